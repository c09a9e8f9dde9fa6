"""Decoding: batched greedy search."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from s2s.model import Seq2Seq
from s2s.subword import BOS_ID, EOS_ID


@dataclass(frozen=True)
class LengthLimit:
    """Max output length = a * src_len + b (src_len without EOS)."""

    a: float = 1.5
    b: int = 10

    def of(self, src_lens: torch.Tensor) -> torch.Tensor:
        """(batch,) source lengths with EOS -> (batch,) max output tokens, EOS excluded."""
        return torch.floor((src_lens - 1).float() * self.a).long() + self.b


@dataclass
class Hypotheses:
    """Decoded token ids per sentence (EOS stripped) and their attention maps."""

    tokens: list[list[int]]
    attention: list[torch.Tensor]  # per sentence (out_len + 1, src_len), the row of EOS included


@torch.no_grad()
def greedy(model: Seq2Seq, src: torch.Tensor, src_lens: torch.Tensor, limit: LengthLimit) -> Hypotheses:
    """Greedy decoding of a batch ``src`` (batch, src_len); no Python loop over sentences."""
    encoded = model.encode(src, src_lens)
    memory, state = model.start(encoded)
    batch = src.size(0)
    max_out = limit.of(src_lens)  # (batch,)
    tokens = torch.full((batch,), BOS_ID, dtype=torch.long, device=src.device)
    done = torch.zeros(batch, dtype=torch.bool, device=src.device)
    outputs, attns = [], []
    for t in range(int(max_out.max()) + 1):
        log_probs, state, weights = model.step_log_probs(tokens, state, memory)
        tokens = log_probs.argmax(dim=-1)                        # (batch,)
        tokens = torch.where(t >= max_out, torch.full_like(tokens, EOS_ID), tokens)
        outputs.append(tokens)
        attns.append(weights)
        done = done | (tokens == EOS_ID)
        if bool(done.all()):
            break
    out = torch.stack(outputs, dim=1).tolist()       # (batch, steps)
    attn = torch.stack(attns, dim=1).cpu()           # (batch, steps, src_len)
    hyps, maps = [], []
    for row, seq in enumerate(out):
        length = seq.index(EOS_ID) if EOS_ID in seq else len(seq)
        hyps.append(seq[:length])
        maps.append(attn[row, :length + 1, :int(src_lens[row])])
    return Hypotheses(hyps, maps)
