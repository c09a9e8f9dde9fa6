"""Shared fixtures: a tiny synthetic parallel corpus, tiny params, the stage scripts as modules."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from s2s.config import Params, params_from_dict, params_to_dict

ROOT = Path(__file__).resolve().parents[1]
STAGE_NAMES = ("download", "clean", "spm", "tensorize", "train", "evaluate")

# Tests use one thread: small tensors gain nothing from more, and runs stay comparable.
torch.set_num_threads(1)

# Every decoder the model builds, as ModelConfig fields: tests that hold for all of them take these.
DECODERS = {
    "bahdanau": {"attention": "bahdanau"},
    "luong": {"attention": "luong"},
    "none": {"attention": "none"},
    "feeding-additive": {"attention": "luong", "input_feeding": True, "attention_score": "additive"},
    "feeding-general": {"attention": "luong", "input_feeding": True},
}

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
        "train": {"max_epochs": 2, "batch_tokens": 400, "threads": 1, "average_last": 0},
        "eval": {"batch_size": 16},
    }


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> dict:
    return write_corpus(tmp_path / "corpus", {"train": 300, "valid": 40, "test": 30})


@pytest.fixture
def tiny_params(tiny_corpus: dict) -> Params:
    return params_from_dict(tiny_params_dict(tiny_corpus))


def stage(name: str):
    """The module of ``stages/<name>.py``; its ``run(params, layout)`` is the stage."""
    module_name = f"stages_{name}"
    if module_name not in sys.modules:
        if str(ROOT / "stages") not in sys.path:
            sys.path.insert(0, str(ROOT / "stages"))  # where the scripts find `common`
        spec = importlib.util.spec_from_file_location(module_name, ROOT / "stages" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


@pytest.fixture
def tiny_project(tmp_path: Path, tiny_params: Params):
    """A project directory with download, clean, spm and tensorize done on the tiny corpus."""
    from s2s.layout import Layout
    layout = Layout(tmp_path / "project")
    for name in ("download", "clean", "spm", "tensorize"):
        stage(name).run(tiny_params, layout)
    return layout


def project_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, by relative path."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def trained_params(tmp_path_factory) -> Params:
    """The tiny params, on a corpus of the session (the same sentences as ``tiny_corpus``)."""
    files = write_corpus(tmp_path_factory.mktemp("shared") / "corpus", {"train": 300, "valid": 40, "test": 30})
    return params_from_dict(tiny_params_dict(files))


@pytest.fixture(scope="session")
def trained_project(tmp_path_factory, trained_params: Params):
    """One project for the whole test run: the data stages and the train stage of ``trained_params``,
    done once. Tests read it and never write it (``trained_copy`` gives a copy to change): it is
    checked unchanged at the end of the run."""
    from s2s.layout import Layout
    layout = Layout(tmp_path_factory.mktemp("trained") / "project")
    for name in ("download", "clean", "spm", "tensorize", "train"):
        stage(name).run(trained_params, layout)
    before = project_digest(layout.root)
    yield layout
    after = project_digest(layout.root)
    changed = sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))
    assert not changed, f"a test changed the shared trained project (use trained_copy): {changed}"


@pytest.fixture
def trained_copy(tmp_path: Path, trained_project):
    """This test's own copy of ``trained_project``, to change as it likes."""
    from s2s.layout import Layout
    shutil.copytree(trained_project.root, tmp_path / "project")
    return Layout(tmp_path / "project")


def dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """Run DVC in ``cwd`` with this Python first on PATH. The installed s2s is the project's own
    checkout, not ``cwd``'s copy: the stage scripts must run their own (``stages/common.py``)."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               DVC_NO_ANALYTICS="1")
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                   capture_output=True)


def make_dvc_repo(repo: Path, files: dict) -> Path:
    """A git + DVC repository with the project's dvc.yaml and code, and tiny params."""
    repo.mkdir(parents=True)
    shutil.copy(ROOT / "dvc.yaml", repo)
    shutil.copy(ROOT / ".gitignore", repo)
    for code in ("src", "stages"):
        shutil.copytree(ROOT / code, repo / code, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    # dvc.yaml names every section, so params.yaml spells out every knob, like the project's.
    full = params_to_dict(params_from_dict(tiny_params_dict(files)))
    (repo / "params.yaml").write_text(yaml.safe_dump(full, sort_keys=False))
    git(repo, "init", "-q")
    assert dvc(repo, "init", "-q").returncode == 0
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "tiny")
    return repo


@pytest.fixture
def dvc_repo(tmp_path: Path, tiny_corpus: dict) -> Path:
    return make_dvc_repo(tmp_path / "repo", tiny_corpus)
