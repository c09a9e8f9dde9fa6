"""Where every pipeline stage reads and writes, relative to the project root.

The one place these paths are spelled in code; ``dvc.yaml`` declares the same
ones (a test compares them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    """The project's files, under ``root`` (the directory of ``dvc.yaml``)."""

    root: Path

    @property
    def params(self) -> Path: return self.root / "params.yaml"
    @property
    def raw(self) -> Path: return self.root / "data" / "raw"
    @property
    def clean(self) -> Path: return self.root / "data" / "clean"
    @property
    def spm(self) -> Path: return self.root / "data" / "spm"
    @property
    def tensors(self) -> Path: return self.root / "data" / "tensors"
    @property
    def model(self) -> Path: return self.root / "models" / "model.pt"
    @property
    def last_checkpoint(self) -> Path: return self.root / "models" / "last.pt"
    @property
    def metrics(self) -> Path: return self.root / "metrics"
    @property
    def train_plots(self) -> Path: return self.root / "plots" / "train"
    @property
    def attention_plots(self) -> Path: return self.root / "plots" / "attention"
    @property
    def outputs(self) -> Path: return self.root / "outputs"

    def raw_corpus(self, corpus: str) -> Path:
        """The downloaded files of ``corpus``: ``<split>.<lang>``."""
        return self.raw / corpus

    def split_tensors(self, split: str) -> Path:
        """The directory of ``split``'s token arrays (see :mod:`s2s.tensors`)."""
        return self.tensors / split
