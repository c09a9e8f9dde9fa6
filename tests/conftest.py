"""Shared fixtures: a tiny synthetic parallel corpus and tiny params."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from s2s.config import Params, params_from_dict

# Tests use one thread: small tensors gain nothing from more, and runs stay comparable.
torch.set_num_threads(1)

SRC_WORDS = ["ein", "zwei", "hund", "katze", "mann", "frau", "läuft", "sitzt", "rot", "blau",
             "auf", "dem", "gras", "tisch", "kind", "spielt", "ball", "groß", "klein", "haus"]
TGT_WORDS = ["a", "two", "dog", "cat", "man", "woman", "runs", "sits", "red", "blue",
             "on", "the", "grass", "table", "child", "plays", "ball", "big", "small", "house"]


def synthetic_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Word-for-word 'translations' of random sentences: learnable by a tiny model."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        idx = [rng.randrange(len(SRC_WORDS)) for _ in range(rng.randint(2, 8))]
        pairs.append((" ".join(SRC_WORDS[i] for i in idx), " ".join(TGT_WORDS[i] for i in idx)))
    return pairs


def write_corpus(directory: Path, sizes: dict[str, int]) -> dict[str, dict[str, str]]:
    """Write ``<split>.de`` / ``<split>.en`` files; return the ``data.files`` mapping."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {}
    for seed, (split, n) in enumerate(sizes.items()):
        pairs = synthetic_pairs(n, seed)
        (directory / f"{split}.de").write_text("".join(s + "\n" for s, _ in pairs), encoding="utf-8")
        (directory / f"{split}.en").write_text("".join(t + "\n" for _, t in pairs), encoding="utf-8")
        files[split] = {"src": str(directory / f"{split}.de"), "tgt": str(directory / f"{split}.en")}
    return files


def tiny_params_dict(files: dict) -> dict:
    """Params for a pipeline that runs in seconds on the synthetic corpus."""
    return {
        "data": {"corpus": "custom", "src": "de", "tgt": "en", "test_sets": ["test"], "files": files},
        "spm": {"vocab_size": 60},
        "model": {"emb": 16, "hidden": 32, "dropout": 0.0},
        "train": {"max_epochs": 2, "batch_tokens": 400, "threads": 1},
        "eval": {"batch_size": 16},
    }


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> dict:
    return write_corpus(tmp_path / "corpus", {"train": 300, "valid": 40, "test": 30})


@pytest.fixture
def tiny_params(tiny_corpus: dict) -> Params:
    return params_from_dict(tiny_params_dict(tiny_corpus))


@pytest.fixture
def tiny_project(tmp_path: Path, tiny_params: Params):
    """A project directory with download, clean, spm and tensorize done on the tiny corpus."""
    from s2s import pipeline
    layout = pipeline.Layout(tmp_path / "project")
    for stage in ("download", "clean", "spm", "tensorize"):
        pipeline.STAGES[stage](tiny_params, layout)
    return layout
