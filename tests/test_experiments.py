"""The experiment workflow through real DVC: determinism, remotes, queued sweeps, param errors."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from conftest import dvc, git, make_dvc_repo

pytestmark = pytest.mark.slow

DATA_STAGES = ("download", "clean", "spm", "tensorize")
QUALITY = ("metrics/data.json", "metrics/train.json", "metrics/eval.json")


def repro(repo: Path) -> None:
    result = dvc(repo, "repro")
    assert result.returncode == 0, result.stdout + result.stderr


def out_hashes(repo: Path) -> dict[str, dict[str, str]]:
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    return {name: {out["path"]: out["md5"] for out in stage.get("outs", [])}
            for name, stage in lock["stages"].items()}


def test_two_fresh_copies_reproduce_the_same_hashes_and_metrics(tmp_path, tiny_corpus):
    first = make_dvc_repo(tmp_path / "first", tiny_corpus)
    second = make_dvc_repo(tmp_path / "second", tiny_corpus)
    repro(first)
    repro(second)
    a, b = out_hashes(first), out_hashes(second)
    for stage in DATA_STAGES:
        assert a[stage] == b[stage], stage
    assert a["train"]["models/model.pt"] == b["train"]["models/model.pt"]
    assert a["evaluate"]["outputs"] == b["evaluate"]["outputs"]
    for name in QUALITY:
        assert (first / name).read_text() == (second / name).read_text(), name


def test_push_then_pull_on_a_fresh_clone_leaves_nothing_to_rerun(tmp_path, dvc_repo):
    storage = tmp_path / "storage"
    assert dvc(dvc_repo, "remote", "add", "-d", "local", str(storage)).returncode == 0
    repro(dvc_repo)
    git(dvc_repo, "add", "-A")
    git(dvc_repo, "commit", "-qm", "reference run")
    pushed = dvc(dvc_repo, "push")
    assert pushed.returncode == 0, pushed.stderr
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(dvc_repo), str(clone))
    pulled = dvc(clone, "pull")
    assert pulled.returncode == 0, pulled.stderr
    assert (clone / "models" / "model.pt").read_bytes() == (dvc_repo / "models" / "model.pt").read_bytes()
    status = dvc(clone, "status", "--json")
    assert json.loads(status.stdout) == {}, status.stdout
    dry = dvc(clone, "repro", "--dry")
    assert "didn't change" in dry.stdout and "Running stage" not in dry.stdout, dry.stdout


def test_queued_sweep_runs_every_experiment(dvc_repo):
    repro(dvc_repo)
    git(dvc_repo, "add", "-A")
    git(dvc_repo, "commit", "-qm", "baseline")
    queued = dvc(dvc_repo, "exp", "run", "--queue", "-S", "model.cell=gru,lstm")
    assert queued.returncode == 0, queued.stderr
    assert dvc(dvc_repo, "queue", "start", "-j", "1").returncode == 0
    deadline = time.time() + 300
    while time.time() < deadline:
        status = dvc(dvc_repo, "queue", "status").stdout
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(2)
    assert status.count("Success") == 2, status
    shown = json.loads(dvc(dvc_repo, "exp", "show", "--json").stdout)
    cells = set()
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs", []):
                cells.add(rev["data"]["params"]["params.yaml"]["data"]["model"]["cell"])
    assert cells == {"gru", "lstm"}


@pytest.mark.parametrize("override, message", [
    # DVC itself refuses to set a key params.yaml lacks, naming it...
    ("model.hiden=512", "Could not override 'model.hiden'"),
    # ...and when forced to add it, our validation stops the first stage.
    ("+model.hiden=512", "model.hiden: unknown parameter; did you mean model.hidden?"),
    ("model.hidden=big", "model.hidden: expected int, got 'big'"),
])
def test_bad_overrides_fail_with_our_message(dvc_repo, override, message):
    result = dvc(dvc_repo, "exp", "run", "-S", override)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_an_experiment_of_two_training_processes_makes_a_model_that_translates(dvc_repo):
    import subprocess
    import sys

    result = dvc(dvc_repo, "exp", "run", "-S", "train.nproc=2", "-S", "train.threads=1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads((dvc_repo / "metrics" / "speed.json").read_text())["processes"] == 2
    assert "nproc: 2" in (dvc_repo / "params.yaml").read_text()
    translated = subprocess.run([sys.executable, "-m", "s2s.cli", "translate", "-m", "models/model.pt"],
                                cwd=dvc_repo, input="ein hund\nzwei katze läuft\n", capture_output=True,
                                text=True, timeout=120)
    assert translated.returncode == 0, translated.stderr
    assert len(translated.stdout.splitlines()) == 2
