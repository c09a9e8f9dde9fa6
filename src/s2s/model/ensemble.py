"""Several trained models decoded as one: their next-token distributions averaged at every step.

:class:`Ensemble` answers the calls search makes of a :class:`~s2s.model.Seq2Seq`
(``encode``, ``start``, ``step_log_probs``, ``step_logits``), so greedy and beam
search, batched as for one model, decode an ensemble unchanged. Each member keeps
its own memory and recurrent state (:class:`EnsembleMemory`, :class:`EnsembleState`),
reordered, sliced and joined by rows together.

The combination is the mean of the members' probabilities, log p(y) = log (1/M) Σ_m p_m(y),
as fairseq's ``EnsembleModel`` and Sockeye's default ``linear`` ensemble compute it: the
result is a distribution (its probabilities sum to 1), so beam scores stay log-probabilities
that the length penalty and n-best scores mean the same as for one model, and a member
that is sure where the others are unsure moves the mixture no more than its share. The mean
of log-probabilities (a renormalised geometric mean, Sockeye's ``log_linear``) would need a
renormalisation at every step and lets one member veto a token by giving it ~0. It is
computed as ``max + log(mean(exp(x - max)))``, so an ensemble of a model with itself gives
that model's log-probabilities exactly, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from s2s.errors import S2SError
from s2s.model.encoder import EncoderOutput
from s2s.model.seq2seq import Seq2Seq
from s2s.model.state import DecoderState, Memory


def mean_of_probabilities(log_probs: list[torch.Tensor]) -> torch.Tensor:
    """Members' (rows, vocab) log-probabilities -> (rows, vocab) log of their mean probability."""
    stacked = torch.stack(log_probs)                                  # (members, rows, vocab)
    top = stacked.max(dim=0).values                                   # (rows, vocab)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))  # all -inf: stays -inf below
    return top + torch.log(torch.exp(stacked - top).mean(dim=0))


@dataclass
class EnsembleMemory:
    """Each member's :class:`Memory` of the same rows; ``mask`` (batch, src_len) is theirs (the same)."""

    parts: list[Memory]

    @property
    def mask(self) -> torch.Tensor:
        return self.parts[0].mask

    def index_select(self, index: torch.Tensor) -> "EnsembleMemory":
        return EnsembleMemory([part.index_select(index) for part in self.parts])

    def prefix(self, rows: int, src_len: int) -> "EnsembleMemory":
        return EnsembleMemory([part.prefix(rows, src_len) for part in self.parts])

    @staticmethod
    def cat(parts: list["EnsembleMemory"]) -> "EnsembleMemory":
        return EnsembleMemory([Memory.cat(list(member)) for member in zip(*(p.parts for p in parts))])


@dataclass
class EnsembleState:
    """Each member's :class:`DecoderState` of the same rows."""

    parts: list[DecoderState]

    def index_select(self, index: torch.Tensor) -> "EnsembleState":
        return EnsembleState([part.index_select(index) for part in self.parts])

    def prefix(self, rows: int) -> "EnsembleState":
        return EnsembleState([part.prefix(rows) for part in self.parts])

    @staticmethod
    def cat(parts: list["EnsembleState"]) -> "EnsembleState":
        return EnsembleState([DecoderState.cat(list(member)) for member in zip(*(p.parts for p in parts))])


class Ensemble(nn.Module):
    """Models sharing one target vocabulary, decoded together (see the module's docstring)."""

    def __init__(self, members: list[Seq2Seq]):
        super().__init__()
        if len(members) < 2:
            raise S2SError(f"an ensemble needs at least 2 models, got {len(members)}")
        vocab = {member.output.weight.size(0) for member in members}
        if len(vocab) > 1:
            raise S2SError(f"ensemble members have target vocabularies of {sorted(vocab)} pieces; "
                           "combine models trained on the same SentencePiece model")
        self.members = nn.ModuleList(members)

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> list[EncoderOutput]:
        """(batch, src_len), (batch,) -> each member's encoder output."""
        return [member.encode(src, src_lens) for member in self.members]

    def start(self, encoded: list[EncoderOutput]) -> tuple[EnsembleMemory, EnsembleState]:
        """Every member's decoding memory and initial state."""
        starts = [member.start(output) for member, output in zip(self.members, encoded)]
        return EnsembleMemory([m for m, _ in starts]), EnsembleState([s for _, s in starts])

    def step_log_probs(self, tokens: torch.Tensor, state: EnsembleState, memory: EnsembleMemory
                       ) -> tuple[torch.Tensor, EnsembleState, "torch.Tensor | None"]:
        """(batch,) previous tokens -> the mixture's log-probabilities (batch, tgt_vocab), the new
        state, and the members' mean attention (batch, src_len) (None without attention)."""
        steps = [member.step_log_probs(tokens, s, m)
                 for member, s, m in zip(self.members, state.parts, memory.parts)]
        weights = [w for _, _, w in steps]
        attention = None if any(w is None for w in weights) else torch.stack(weights).mean(dim=0)
        return (mean_of_probabilities([lp for lp, _, _ in steps]), EnsembleState([s for _, s, _ in steps]),
                attention)

    def step_logits(self, tokens: torch.Tensor, state: EnsembleState, memory: EnsembleMemory
                    ) -> tuple[torch.Tensor, EnsembleState, "torch.Tensor | None"]:
        """As :meth:`step_log_probs`: the mixture's log-probabilities serve greedy's argmax."""
        return self.step_log_probs(tokens, state, memory)
