"""Validation figures of a model during training: loss per target token and greedy BLEU."""

from __future__ import annotations

import torch
from sacrebleu.metrics import BLEU

from s2s.model import Seq2Seq
from s2s.tensors import ParallelData, collate, token_batches
from s2s.translator import Translator


@torch.no_grad()
def validation_loss(model: Seq2Seq, data: ParallelData, batch_tokens: int, device: torch.device) -> float:
    """Mean cross-entropy per target token (no label smoothing) over a split; leaves ``model`` in eval mode."""
    model.eval()
    total, tokens = 0.0, 0
    for indices in token_batches(data.src_lens, data.tgt_lens, batch_tokens):
        batch = collate(data, indices).to(device)
        total += model.token_losses(batch.src, batch.src_lens, batch.tgt_in, batch.tgt_out).sum().item()
        tokens += batch.n_tgt_tokens
    return total / tokens


def validation_bleu(translator: Translator, data: ParallelData) -> float:
    """Greedy-decoded BLEU of a split against its SentencePiece-decoded references."""
    hyps = translator.detokenize(translator.translate_ids([data.src(i) for i in range(len(data))]))
    refs = [translator.vocabs.tgt.decode(data.tgt(i).tolist()) for i in range(len(data))]
    return BLEU().corpus_score(hyps, [refs]).score
