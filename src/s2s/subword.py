"""SentencePiece training and encoding.

Ids are fixed: pad 0, unk 1, bos 2, eos 3. Training uses a fixed seed and
``spm.threads`` threads (1 by default): two runs on the same text with the same
thread count write byte-identical models, but another count gives another model
(SentencePiece splits the sentences among its threads and sums their unigram
statistics in that order; bpe records the count in the model); on a
corpus of more than ``spm.input_sentence_size`` sentences it trains on a seeded
sample of them, so its time and memory do not grow with the corpus. A
joint vocabulary is ``spm.model``; separate ones are ``src.model`` and
``tgt.model`` in the same directory.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import sentencepiece as spm

from s2s.atomic import write_bytes
from s2s.config import SpmConfig
from s2s.errors import S2SError

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


class SubwordError(S2SError):
    """SentencePiece could not be trained or loaded."""


def _lines(paths: list[Path]) -> Iterator[str]:
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            yield from (line.rstrip("\n") for line in handle)


def sample_sentences(paths: list[Path], size: int, seed: int) -> Iterator[str]:
    """The lines of ``paths`` in order, or, when they hold more than ``size`` (> 0), a sample of
    ``size`` of them drawn without replacement by ``seed``, in corpus order.

    Two passes over the files (one to count the lines); memory holds the sample's line numbers.
    """
    total = sum(1 for _ in _lines(paths)) if size else 0
    if not size or total <= size:
        yield from _lines(paths)
        return
    chosen = np.sort(np.random.default_rng(seed).choice(total, size=size, replace=False))  # (size,)
    position = 0
    for number, line in enumerate(_lines(paths)):
        if position < size and number == chosen[position]:
            position += 1
            yield line


def training_threads(config: SpmConfig) -> int:
    """The threads SentencePiece trains with: ``spm.threads``, or every core for 0."""
    return config.threads or os.cpu_count() or 1


def _train_one(inputs: list[Path], out_dir: Path, name: str, config: SpmConfig) -> None:
    """Train one model on ``inputs``; write ``out_dir/name.model`` and ``.vocab`` atomically.

    Sentences are streamed and the model returned in memory, so no path ends
    up inside the model: the same text gives the same bytes wherever it lives.
    """
    spm.set_random_generator_seed(config.seed)
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=sample_sentences(inputs, config.input_sentence_size, config.seed), model_writer=model,
            vocab_size=config.vocab_size, model_type=config.model_type,
            character_coverage=config.character_coverage,
            pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID,
            num_threads=training_threads(config), input_sentence_size=0, shuffle_input_sentence=False,
            minloglevel=2)
    except RuntimeError as err:
        raise SubwordError(f"SentencePiece training failed: {err}; for a small corpus lower "
                           "spm.vocab_size") from None
    processor = spm.SentencePieceProcessor(model_proto=model.getvalue())
    vocab = "".join(f"{processor.id_to_piece(i)}\t{processor.get_score(i):g}\n"
                    for i in range(processor.get_piece_size()))
    for ext, payload in ((".model", model.getvalue()), (".vocab", vocab.encode("utf-8"))):
        write_bytes(out_dir / f"{name}{ext}", payload)


def train_subword(train_src: Path, train_tgt: Path, out_dir: Path, config: SpmConfig) -> None:
    """Train the joint model (``spm.model``) or one model per side (``src/tgt.model``)."""
    if config.joint:
        _train_one([train_src, train_tgt], out_dir, "spm", config)
    else:
        _train_one([train_src], out_dir, "src", config)
        _train_one([train_tgt], out_dir, "tgt", config)


def _load(path: Path) -> spm.SentencePieceProcessor:
    if not path.exists():
        raise SubwordError(f"{path}: SentencePiece model not found; run `dvc repro spm` first")
    return spm.SentencePieceProcessor(model_file=str(path))


@dataclass
class Vocabs:
    """The source and target SentencePiece processors (the same object when joint)."""

    src: spm.SentencePieceProcessor
    tgt: spm.SentencePieceProcessor

    @classmethod
    def load(cls, spm_dir: Path) -> "Vocabs":
        spm_dir = Path(spm_dir)
        if (spm_dir / "spm.model").exists():
            joint = _load(spm_dir / "spm.model")
            return cls(src=joint, tgt=joint)
        return cls(src=_load(spm_dir / "src.model"), tgt=_load(spm_dir / "tgt.model"))

    @property
    def joint(self) -> bool:
        return self.src is self.tgt

    def to_protos(self) -> dict[str, bytes]:
        """The serialized models, to store inside a checkpoint."""
        if self.joint:
            return {"joint": self.src.serialized_model_proto()}
        return {"src": self.src.serialized_model_proto(), "tgt": self.tgt.serialized_model_proto()}

    def fingerprint(self) -> str:
        """sha256 of the serialized models: tensors and model files record it, so that data made with
        one vocabulary is never read with another."""
        digest = hashlib.sha256()
        for name, proto in sorted(self.to_protos().items()):
            digest.update(f"{name}:{len(proto)}:".encode())
            digest.update(proto)
        return digest.hexdigest()

    @classmethod
    def from_protos(cls, protos: dict[str, bytes]) -> "Vocabs":
        if "joint" in protos:
            joint = spm.SentencePieceProcessor(model_proto=protos["joint"])
            return cls(src=joint, tgt=joint)
        return cls(src=spm.SentencePieceProcessor(model_proto=protos["src"]),
                   tgt=spm.SentencePieceProcessor(model_proto=protos["tgt"]))
