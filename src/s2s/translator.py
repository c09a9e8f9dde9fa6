"""From source ids or raw lines to target text with a trained model, batched and order-preserving."""

from __future__ import annotations

import itertools
import logging
import sys
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional, Sequence, TypeVar

import numpy as np
import torch
from tqdm import tqdm

from s2s.clean import normalize
from s2s.model import Seq2Seq
from s2s.model.ensemble import Ensemble
from s2s.model.gemm import blocked_weights
from s2s.search import Finished, Hypotheses, LengthLimit, beam_search, greedy
from s2s.subword import EOS_ID, Vocabs
from s2s.tensors import pad

log = logging.getLogger(__name__)
T = TypeVar("T")
GREEDY_BATCHES_PER_GROUP = 16  # batches of sentences per greedy call; only a call's last steps run part-full
# Lines of a stream read and translated at a time, in batches: one greedy group, so a chunk
# decodes as efficiently as the whole input would (length-sorted batches, one part-full tail
# per 16 batches), while what is held (lines, ids, attention maps) stays bounded and the first
# output comes after 16 batches, not after the whole input.
STREAM_BATCHES_PER_CHUNK = GREEDY_BATCHES_PER_GROUP
NBest = list[tuple[str, float]]  # (text, score) of one line's best hypotheses, best first


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter), each read only when asked for."""
    if size < 1:
        raise ValueError(f"chunk size {size}: must be at least 1")
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def moses_nbest(chunks_of_hyps: Iterable[list[NBest]], first: int = 0) -> Iterator[list[str]]:
    """Chunks of n-best lists as chunks of Moses lines ``number ||| text ||| score``; numbers
    count input lines from ``first`` across the chunks."""
    number = first
    for hyps_of_lines in chunks_of_hyps:
        yield [f"{number + i} ||| {text} ||| {score:.4f}"
               for i, hyps in enumerate(hyps_of_lines) for text, score in hyps]
        number += len(hyps_of_lines)


@dataclass
class Translator:
    """A model (or an ensemble of models) with its vocabularies and decoding settings."""

    model: "Seq2Seq | Ensemble"
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

    @property
    def chunk_lines(self) -> int:
        """Lines per chunk of a stream, by default: :data:`STREAM_BATCHES_PER_CHUNK` batches."""
        return STREAM_BATCHES_PER_CHUNK * self.batch_size

    def encode_lines(self, lines: Sequence[str], first_line: int = 1) -> list[np.ndarray]:
        """Normalise and SentencePiece-encode raw lines; too long ones are truncated with a warning
        that names the line, counting ``lines[0]`` as line ``first_line``."""
        encoded = []
        for number, line in enumerate(lines, start=first_line):
            ids = self.vocabs.src.encode(normalize(line, self.normalization))
            if len(ids) > self.max_src_len:
                log.warning("line %d: %d source pieces, truncated to %d", number, len(ids), self.max_src_len)
                ids = ids[:self.max_src_len]
            encoded.append(np.asarray(ids, dtype=np.int64))
        return encoded

    def translate_lines(self, lines: Sequence[str], progress: bool = False, first_line: int = 1) -> list[str]:
        """Raw text in, plain text out, one line per line; empty lines stay empty.
        Warnings count ``lines[0]`` as line ``first_line``."""
        ids = self.encode_lines(lines, first_line)
        keep = [i for i, seq in enumerate(ids) if len(seq)]
        texts = self.detokenize(self.translate_ids([ids[i] for i in keep], progress))
        out = [""] * len(lines)
        for i, text in zip(keep, texts):
            out[i] = text
        return out

    def nbest_lines(self, lines: Sequence[str], nbest: int, progress: bool = False,
                    first_line: int = 1) -> list[NBest]:
        """The ``nbest`` best (text, score) of each raw line; an empty line gives [("", 0.0)].
        Warnings count ``lines[0]`` as line ``first_line``."""
        ids = self.encode_lines(lines, first_line)
        keep = [i for i, seq in enumerate(ids) if len(seq)]
        out: list[list[tuple[str, float]]] = [[("", 0.0)] for _ in lines]
        for i, hyps in zip(keep, self.nbest_ids([ids[i] for i in keep], nbest, progress)):
            out[i] = [(self.vocabs.tgt.decode(h.tokens), h.score) for h in hyps]
        return out

    def translate_stream(self, lines: Iterable[str], chunk_lines: Optional[int] = None,
                         progress: bool = False) -> Iterator[list[str]]:
        """:meth:`translate_lines` over a stream: chunks of ``chunk_lines`` lines (default
        :attr:`chunk_lines`) are read, translated (length-sorted within the chunk) and yielded,
        in input order, before the next chunk is read. Warnings name the line of the stream."""
        return self._stream(lines, chunk_lines, progress,
                            lambda chunk, first: self.translate_lines(chunk, first_line=first))

    def nbest_stream(self, lines: Iterable[str], nbest: int, chunk_lines: Optional[int] = None,
                     progress: bool = False) -> Iterator[list[NBest]]:
        """:meth:`nbest_lines` over a stream, chunk by chunk as :meth:`translate_stream` does."""
        return self._stream(lines, chunk_lines, progress,
                            lambda chunk, first: self.nbest_lines(chunk, nbest, first_line=first))

    def _stream(self, lines: Iterable[str], chunk_lines: Optional[int], progress: bool,
                translate_chunk: Callable[[list[str], int], list[T]]) -> Iterator[list[T]]:
        """``translate_chunk(chunk, number of its first line)`` of each chunk, with a progress bar
        counting lines."""
        first = 1
        with tqdm(desc="translating", unit=" lines", disable=None if progress else True,
                  leave=False, file=sys.stderr) as bar:
            for chunk in chunks(lines, chunk_lines or self.chunk_lines):
                yield translate_chunk(chunk, first)
                first += len(chunk)
                bar.update(len(chunk))
