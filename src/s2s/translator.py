"""From source ids or raw lines to target text with a trained model, batched and order-preserving."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from s2s.clean import normalize
from s2s.model import Seq2Seq
from s2s.search import Hypotheses, LengthLimit, beam_search, greedy
from s2s.subword import EOS_ID, Vocabs
from s2s.tensors import pad


@dataclass
class Translator:
    """A model with its vocabularies and decoding settings."""

    model: Seq2Seq
    vocabs: Vocabs
    limit: LengthLimit
    batch_size: int = 64
    normalization: str = "NFC"
    beam: int = 1
    len_penalty: float = 1.0

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def translate_ids(self, sources: Sequence[np.ndarray], progress: bool = False) -> Hypotheses:
        """Decode id arrays (without EOS); batches are sorted by length, results in input order.

        Greedy (beam 1) also returns attention maps; beam search returns empty ones.
        """
        order = np.argsort([len(s) for s in sources], kind="stable")
        tokens: list[list[int]] = [[] for _ in sources]
        attention: list[torch.Tensor] = [torch.empty(0) for _ in sources]
        self.model.eval()
        starts = range(0, len(order), self.batch_size)
        for start in tqdm(starts, desc="decoding", disable=None if progress else True,
                          leave=False, file=sys.stderr):
            rows = order[start:start + self.batch_size]
            src = pad([np.asarray(sources[i]) for i in rows], suffix=EOS_ID).to(self.device)
            src_lens = torch.tensor([len(sources[i]) + 1 for i in rows], device=self.device)
            if self.beam == 1:
                hyps = greedy(self.model, src, src_lens, self.limit)
                for row, seq, attn in zip(rows, hyps.tokens, hyps.attention):
                    tokens[row], attention[row] = seq, attn
            else:
                best = beam_search(self.model, src, src_lens, self.limit, self.beam, self.len_penalty)
                for row, hyps_of_row in zip(rows, best):
                    tokens[row] = hyps_of_row[0].tokens
        return Hypotheses(tokens, attention)

    def detokenize(self, hyps: Hypotheses) -> list[str]:
        return [self.vocabs.tgt.decode(seq) for seq in hyps.tokens]

    def translate_lines(self, lines: Sequence[str], progress: bool = False) -> list[str]:
        """Raw text in, plain text out; empty lines stay empty."""
        normalized = [normalize(line, self.normalization) for line in lines]
        ids = [np.asarray(self.vocabs.src.encode(line), dtype=np.int64) for line in normalized]
        keep = [i for i, line in enumerate(normalized) if line]
        texts = self.detokenize(self.translate_ids([ids[i] for i in keep], progress))
        out = [""] * len(lines)
        for i, text in zip(keep, texts):
            out[i] = text
        return out
