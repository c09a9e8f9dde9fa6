"""Token ids on disk, opened memory-mapped, and length-bucketed batches.

A split is a directory ``<split>/`` of flat arrays in NumPy's ``.npy`` format:
per side an int32 array of token ids (``src.npy``, ``tgt.npy``) and an int64
array of offsets (``src_offsets.npy``: ``offsets[i]:offsets[i+1]`` is sentence
``i``), and ``meta.json`` with the fingerprint of the SentencePiece models that
made the ids, the sizes and the sha256 of the arrays. Training opens the arrays
memory-mapped: it reads the offsets (lengths) to build batches and only the
ids of the sentences in each batch, so its memory does not grow with the
corpus. :mod:`s2s.tensorizer` writes them. Batches group sentences of similar
length so that a token budget is spent on real tokens, not padding.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from s2s.errors import S2SError
from s2s.subword import BOS_ID, EOS_ID, PAD_ID, Vocabs

FORMAT = "s2s-tensors-1"
ARRAYS = ("src", "src_offsets", "tgt", "tgt_offsets")  # file <name>.npy each, hashed in this order
META = "meta.json"


class TensorError(S2SError):
    """Missing or malformed tensor files."""


def pack(sequences: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Flatten id lists into (ids int32 (total,), offsets int64 (n+1,))."""
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.fromiter((t for s in sequences for t in s), dtype=np.int32, count=int(offsets[-1]))
    return ids, offsets


def combine_digests(array_digests: list[bytes]) -> str:
    """The split's sha256: of the sha256 digests of its arrays, in :data:`ARRAYS` order."""
    return hashlib.sha256(b"".join(array_digests)).hexdigest()


def arrays_digest(arrays: dict[str, np.ndarray]) -> str:
    """The split's sha256 (what ``meta.json`` records) computed from the arrays themselves."""
    return combine_digests([hashlib.sha256(np.ascontiguousarray(arrays[name]).data).digest() for name in ARRAYS])


def _lengths(offsets_path: Path, chunk: int = 1 << 20) -> np.ndarray:
    """(n,) int32 sentence lengths from an offsets ``.npy`` file (n+1,), read in chunks with plain
    reads: the offsets' pages are not mapped into the process, so they do not count in its memory."""
    with open(offsets_path, "rb") as handle:
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}[np.lib.format.read_magic(handle)]
        shape, _, dtype = read_header(handle)
        lengths = np.empty(shape[0] - 1, dtype=np.int32)
        previous = np.fromfile(handle, dtype=dtype, count=1)
        for start in range(0, len(lengths), chunk):
            offsets = np.fromfile(handle, dtype=dtype, count=min(chunk, len(lengths) - start))
            lengths[start:start + len(offsets)] = np.diff(np.concatenate([previous, offsets]))
            previous = offsets[-1:]
    return lengths


class ParallelData:
    """One tensorized split: sentence ``i`` is ``src(i)`` / ``tgt(i)`` as id arrays.

    ``arrays`` holds ``src``, ``src_offsets``, ``tgt``, ``tgt_offsets`` (NumPy arrays,
    memory-mapped when loaded from disk, or torch tensors); ``vocab`` is the
    fingerprint of the SentencePiece models the ids were made with
    (:meth:`Vocabs.fingerprint`), ``path`` the directory they came from.
    """

    def __init__(self, arrays: dict, path: Optional[Path] = None, vocab: Optional[str] = None,
                 digest: Optional[str] = None, lengths: Optional[dict[str, np.ndarray]] = None):
        self.path = path
        self.vocab = vocab if vocab is not None else arrays.get("vocab")
        as_numpy = {name: arrays[name].numpy() if isinstance(arrays[name], torch.Tensor) else arrays[name]
                    for name in ARRAYS}
        self.src_ids, self.src_offsets = as_numpy["src"], as_numpy["src_offsets"]      # (src_tokens,), (n+1,)
        self.tgt_ids, self.tgt_offsets = as_numpy["tgt"], as_numpy["tgt_offsets"]      # (tgt_tokens,), (n+1,)
        lengths = lengths or {side: np.diff(as_numpy[f"{side}_offsets"]).astype(np.int32) for side in ("src", "tgt")}
        self.src_lens, self.tgt_lens = lengths["src"], lengths["tgt"]  # (n,) int32 each: 4 bytes a sentence
        self._digest = digest

    @classmethod
    def load(cls, path: Path) -> "ParallelData":
        """Open the split directory ``path`` (its arrays memory-mapped, read-only)."""
        path = Path(path)
        if not (path / META).is_file():
            if path.with_suffix(".pt").is_file() or path.suffix == ".pt":
                raise TensorError(f"{path}: tensors in the format of an older s2s (one .pt file per split); "
                                  "run `dvc repro tensorize` to write them again")
            raise TensorError(f"{path}: tensor files not found; run `dvc repro tensorize` first")
        try:
            meta = json.loads((path / META).read_text())
            if meta.get("format") != FORMAT:
                raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT!r}")
            arrays = {name: np.load(path / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in ARRAYS}
        except (OSError, ValueError) as err:
            raise TensorError(f"{path}: damaged tensor files ({err}); run `dvc repro tensorize` to write "
                              "them again") from None
        for side in ("src", "tgt"):
            offsets = arrays[f"{side}_offsets"]
            if len(offsets) != meta["pairs"] + 1 or offsets[-1] != len(arrays[side]):
                raise TensorError(f"{path}: {side} ids and offsets do not match {META}; run "
                                  "`dvc repro tensorize` to write them again")
        lengths = {side: _lengths(path / f"{side}_offsets.npy") for side in ("src", "tgt")}
        return cls(arrays, path, vocab=meta["vocab"], digest=meta["sha256"], lengths=lengths)

    @property
    def digest(self) -> str:
        """sha256 of the arrays (from ``meta.json`` when loaded: no need to read the ids)."""
        if self._digest is None:
            self._digest = arrays_digest({"src": self.src_ids, "src_offsets": self.src_offsets,
                                          "tgt": self.tgt_ids, "tgt_offsets": self.tgt_offsets})
        return self._digest

    def require_vocabulary(self, vocabs: Vocabs, owner: str, rerun: str) -> None:
        """Raise :class:`TensorError` unless these ids were made with ``vocabs`` (those of ``owner``)."""
        if self.vocab != vocabs.fingerprint():
            made = "with another vocabulary" if self.vocab else "by an older s2s, without a vocabulary record"
            raise TensorError(f"{self.path}: made {made} than {owner}'s; its ids would be read as other "
                              f"pieces. {rerun}")

    def __len__(self) -> int:
        return len(self.src_lens)

    def src(self, i: int) -> np.ndarray:
        return self.src_ids[self.src_offsets[i]:self.src_offsets[i + 1]]

    def tgt(self, i: int) -> np.ndarray:
        return self.tgt_ids[self.tgt_offsets[i]:self.tgt_offsets[i + 1]]


@dataclass
class Batch:
    """Padded tensors of one batch; every side ends in EOS, padding is PAD_ID."""

    src: torch.Tensor       # (batch, src_len) source ids + EOS
    src_lens: torch.Tensor  # (batch,) int64, lengths with EOS
    tgt_in: torch.Tensor    # (batch, tgt_len) BOS + target ids
    tgt_out: torch.Tensor   # (batch, tgt_len) target ids + EOS
    indices: np.ndarray     # (batch,) sentence numbers in the split

    @property
    def n_tgt_tokens(self) -> int:
        return int((self.tgt_out != PAD_ID).sum())

    def to(self, device: torch.device) -> "Batch":
        return Batch(self.src.to(device), self.src_lens.to(device), self.tgt_in.to(device),
                     self.tgt_out.to(device), self.indices)


def pad(sequences: list[np.ndarray], prefix: int | None = None,
        suffix: int | None = None) -> torch.Tensor:
    """Right-pad id arrays into (n, max_len) int64, adding a prefix/suffix token to each."""
    extra = (prefix is not None) + (suffix is not None)
    out = torch.full((len(sequences), max(len(s) for s in sequences) + extra), PAD_ID,
                     dtype=torch.long)
    for row, seq in enumerate(sequences):
        start = 0
        if prefix is not None:
            out[row, 0] = prefix
            start = 1
        out[row, start:start + len(seq)] = torch.from_numpy(seq.astype(np.int64))
        if suffix is not None:
            out[row, start + len(seq)] = suffix
    return out


def collate(data: ParallelData, indices: np.ndarray) -> Batch:
    """Build the padded batch of sentences ``indices``."""
    srcs = [data.src(i) for i in indices]
    tgts = [data.tgt(i) for i in indices]
    src = pad(srcs, suffix=EOS_ID)
    src_lens = torch.tensor([len(s) + 1 for s in srcs], dtype=torch.long)
    return Batch(src=src, src_lens=src_lens, tgt_in=pad(tgts, prefix=BOS_ID),
                 tgt_out=pad(tgts, suffix=EOS_ID), indices=np.asarray(indices))


def token_batches(src_lens: np.ndarray, tgt_lens: np.ndarray, batch_tokens: int,
                  rng: np.random.Generator | None = None, pool: int = 0,
                  buckets_per_batch: int = 1) -> list[np.ndarray]:
    """Split sentence indices into length-bucketed batches of at most ``batch_tokens``.

    The budget counts padded positions (sentences x longest side + 1), so a
    batch of one bucket never exceeds it however lengths vary. With ``rng``, sentences are
    shuffled before sorting and the order of batches is shuffled; without, the
    order is by length (for decoding). ``pool`` > 0 sorts only within pools of
    about that many batches, taken from the shuffled corpus, so a sentence meets
    different neighbours each epoch (the torchtext BucketIterator scheme); 0
    sorts the whole corpus at once (least padding, the same few batch mates).

    ``buckets_per_batch`` = k > 1 (with ``rng``) cuts bucketed chunks of
    ``batch_tokens // k`` and joins k consecutive ones of the shuffled order:
    each batch then mixes k lengths, as k accumulated batches would, and the
    padding that leaves costs the packed decoder nothing. The budget of a
    joined batch counts its chunks' padded positions, so its padded tensors
    (rows x longest sentence of any chunk) are larger than ``batch_tokens``.
    """
    if buckets_per_batch > 1 and rng is not None:
        chunks = token_batches(src_lens, tgt_lens, batch_tokens // buckets_per_batch, rng, pool)
        return [np.concatenate(chunks[i:i + buckets_per_batch]) for i in range(0, len(chunks), buckets_per_batch)]
    n = len(src_lens)
    index = np.int32 if n < 2 ** 31 else np.int64  # 4 bytes a sentence in the batches (the same values)
    order = (rng.permutation(n) if rng is not None else np.arange(n)).astype(index)
    width = np.maximum(src_lens, tgt_lens) + 1
    if pool > 0 and rng is not None:
        pool_sentences = max(1, round(pool * batch_tokens / float(width.mean())))
        pools = [order[start:start + pool_sentences] for start in range(0, n, pool_sentences)]
    else:
        pools = [order]
    batches = [batch for members in pools for batch in _fill(members, src_lens, tgt_lens, width, batch_tokens)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def _fill(members: np.ndarray, src_lens: np.ndarray, tgt_lens: np.ndarray, width: np.ndarray,
          batch_tokens: int) -> list[np.ndarray]:
    """Sort ``members`` by (target, source) length, stably, and cut them into batches within the budget."""
    members = members[np.lexsort((src_lens[members], tgt_lens[members]))]
    widths = width[members]
    batches, start, n = [], 0, len(members)
    while start < n:
        end, longest = start, 0
        while end < n:
            longest = max(longest, int(widths[end]))
            if (end - start + 1) * longest > batch_tokens and end > start:
                break
            end += 1
        batches.append(members[start:end])
        start = end
    return batches
