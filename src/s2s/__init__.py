"""s2s: a reproducible neural machine translation pipeline (DVC, SentencePiece, PyTorch, sacreBLEU)."""
