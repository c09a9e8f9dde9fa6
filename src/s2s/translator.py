"""From source ids or raw lines to target text with a trained model, batched and order-preserving."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar

import numpy as np
import torch
from tqdm import tqdm

from s2s.clean import normalize
from s2s.model import Seq2Seq
from s2s.model.gemm import blocked_weights
from s2s.search import Finished, Hypotheses, LengthLimit, beam_search, greedy
from s2s.subword import EOS_ID, Vocabs
from s2s.tensors import pad

log = logging.getLogger(__name__)
T = TypeVar("T")
GREEDY_BATCHES_PER_GROUP = 16  # batches of sentences per greedy call; only a call's last steps run part-full


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
    max_src_len: int = 250  # longer inputs are truncated (raw-text translation only)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _decode_sorted(self, sources: Sequence[np.ndarray], decode_batch: Callable[[torch.Tensor, torch.Tensor], list[T]],
                       progress: bool, group: int) -> list[T]:
        """Run ``decode_batch(src, src_lens)`` over length-sorted groups of ``group`` sentences;
        results in input order. The output and attention layers multiply by weights in oneDNN's
        blocked layout, made once for all the groups (on the CPU; :func:`blocked_weights`)."""
        order = np.argsort([len(s) for s in sources], kind="stable")
        results: list = [None] * len(sources)
        self.model.eval()
        starts = range(0, len(order), group)
        with blocked_weights(self.model):
            for start in tqdm(starts, desc="decoding", disable=None if progress else True,
                              leave=False, file=sys.stderr):
                rows = order[start:start + group]
                src = pad([np.asarray(sources[i]) for i in rows], suffix=EOS_ID).to(self.device)  # (batch, src_len)
                src_lens = torch.tensor([len(sources[i]) + 1 for i in rows], device=self.device)  # (batch,)
                for row, result in zip(rows, decode_batch(src, src_lens)):
                    results[row] = result
        return results

    def translate_ids(self, sources: Sequence[np.ndarray], progress: bool = False) -> Hypotheses:
        """Decode id arrays (without EOS) with greedy search (beam 1) or beam search.

        Greedy also returns attention maps; beam search returns empty ones.
        """
        if self.beam == 1:
            def decode(src: torch.Tensor, src_lens: torch.Tensor) -> list[tuple[list[int], torch.Tensor]]:
                hyps = greedy(self.model, src, src_lens, self.limit, self.batch_size)
                return list(zip(hyps.tokens, hyps.attention))
            # greedy refills its batch as sentences end; a group bounds the memory of its attention maps
            pairs = self._decode_sorted(sources, decode, progress, GREEDY_BATCHES_PER_GROUP * self.batch_size)
            return Hypotheses([t for t, _ in pairs], [a for _, a in pairs])
        best = self.nbest_ids(sources, 1, progress)
        return Hypotheses([hyps[0].tokens for hyps in best], [torch.empty(0) for _ in best])

    def nbest_ids(self, sources: Sequence[np.ndarray], nbest: int, progress: bool = False) -> list[list[Finished]]:
        """The ``nbest`` best beam hypotheses of each source, best first."""
        return self._decode_sorted(
            sources, lambda src, src_lens: beam_search(self.model, src, src_lens, self.limit,
                                                       max(self.beam, nbest), self.len_penalty, nbest),
            progress, self.batch_size)

    def detokenize(self, hyps: Hypotheses) -> list[str]:
        return [self.vocabs.tgt.decode(seq) for seq in hyps.tokens]

    def encode_lines(self, lines: Sequence[str]) -> list[np.ndarray]:
        """Normalise and SentencePiece-encode raw lines; too long ones are truncated with a warning."""
        encoded = []
        for number, line in enumerate(lines, start=1):
            ids = self.vocabs.src.encode(normalize(line, self.normalization))
            if len(ids) > self.max_src_len:
                log.warning("line %d: %d source pieces, truncated to %d", number, len(ids), self.max_src_len)
                ids = ids[:self.max_src_len]
            encoded.append(np.asarray(ids, dtype=np.int64))
        return encoded

    def translate_lines(self, lines: Sequence[str], progress: bool = False) -> list[str]:
        """Raw text in, plain text out, one line per line; empty lines stay empty."""
        ids = self.encode_lines(lines)
        keep = [i for i, seq in enumerate(ids) if len(seq)]
        texts = self.detokenize(self.translate_ids([ids[i] for i in keep], progress))
        out = [""] * len(lines)
        for i, text in zip(keep, texts):
            out[i] = text
        return out

    def nbest_lines(self, lines: Sequence[str], nbest: int, progress: bool = False) -> list[list[tuple[str, float]]]:
        """The ``nbest`` best (text, score) of each raw line; an empty line gives [("", 0.0)]."""
        ids = self.encode_lines(lines)
        keep = [i for i, seq in enumerate(ids) if len(seq)]
        out: list[list[tuple[str, float]]] = [[("", 0.0)] for _ in lines]
        for i, hyps in zip(keep, self.nbest_ids([ids[i] for i in keep], nbest, progress)):
            out[i] = [(self.vocabs.tgt.decode(h.tokens), h.score) for h in hyps]
        return out
