"""The train stage in several processes: ``train.nproc: 2`` starts two gloo ranks through torch's
elastic launch, and they must train the model one process trains, write once, and resume exactly."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import ROOT
from s2s.config import params_to_dict
from s2s.errors import S2SError
from s2s.launch import Rendezvous
from s2s.layout import Layout
from test_train import wait_for_checkpoint, with_train


def project_copy(source: Layout, root: Path, params) -> Layout:
    """A copy of ``source``'s data with this checkout's stage scripts and code, and ``params``."""
    shutil.copytree(source.root / "data", root / "data")
    shutil.copytree(ROOT / "stages", root / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "src").symlink_to(ROOT / "src", target_is_directory=True)  # the scripts run this checkout's s2s
    write_params(root, params)
    return Layout(root)


def write_params(root: Path, params) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump(params_to_dict(params), sort_keys=False))


def start(layout: Layout) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(layout.root / "stages" / "train.py")], cwd=layout.root,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def train_stage(layout: Layout) -> str:
    proc = start(layout)
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, output
    return output


def curve(layout: Layout, name: str) -> list[float]:
    """One dvclive curve of the run (one value per validation)."""
    path = layout.train_plots / "plots" / "metrics" / f"{name}.tsv"
    with path.open() as handle:
        return [float(row[name.split("/")[-1]]) for row in csv.DictReader(handle, delimiter="\t")]


def weights(path: Path, key: str = "model") -> dict:
    return torch.load(path, weights_only=True)[key]


def relative_difference(a: dict, b: dict) -> float:
    """The largest ||a - b|| / ||a|| over the tensors of two state dicts."""
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).norm() / a[k].norm().clamp_min(1e-12)) for k in a)


def output_files(layout: Layout) -> list[str]:
    return sorted(str(p.relative_to(layout.root)) for d in ("models", "metrics", "plots")
                  for p in (layout.root / d).rglob("*") if p.is_file())


@pytest.mark.parametrize("accumulate", [1, 2])
def test_two_processes_make_the_updates_of_one_and_write_once(tiny_project, tiny_params, tmp_path, accumulate):
    # dropout 0 (the tiny params), label smoothing and clipping as by default: >= 20 updates
    params = with_train(tiny_params, max_epochs=3, batch_tokens=120, accumulate=accumulate)
    one = project_copy(tiny_project, tmp_path / "one", params)
    two = project_copy(tiny_project, tmp_path / "two", with_train(params, nproc=2))
    train_stage(one)
    output = train_stage(two)
    assert "starting 2 training processes" in output
    assert output.count("epoch 3: train loss") == 1  # the writer alone reports (and logs to dvclive)
    quality_one, quality_two = (json.loads((p.metrics / "train.json").read_text()) for p in (one, two))
    assert quality_two["steps"] == quality_one["steps"] >= 20
    assert quality_two["best_valid_loss"] == pytest.approx(quality_one["best_valid_loss"], rel=1e-5)
    for name in ("train/loss", "valid/loss", "grad_norm"):
        assert curve(two, name) == pytest.approx(curve(one, name), rel=1e-5), name
    assert relative_difference(weights(one.last_checkpoint), weights(two.last_checkpoint)) < 1e-5
    assert relative_difference(weights(one.model), weights(two.model)) < 1e-5
    speed = json.loads((two.metrics / "speed.json").read_text())
    assert speed["processes"] == 2 and speed["train_tgt_tokens_per_s"] > 0
    assert output_files(two) == output_files(one)  # no second copy, no .part file left by another rank


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (neither gone nor a zombie)."""
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, trained_project, trained_params) -> tuple[Layout, object]:
    """A two-process run of 4 epochs (checkpoints every 2 updates), never interrupted."""
    params = with_train(trained_params, max_epochs=4, checkpoint_every=2, batch_tokens=120, average_last=3,
                        nproc=2)
    layout = project_copy(trained_project, tmp_path_factory.mktemp("ddp") / "reference", params)
    for leftover in ("models", "metrics", "plots"):  # the shared project's training is not this one's
        shutil.rmtree(layout.root / leftover, ignore_errors=True)
    train_stage(layout)
    return layout, params


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="finds the training processes through /proc")
@pytest.mark.parametrize("how", ["SIGKILL to every process", "SIGTERM to rank 1 alone", "SIGTERM to the launcher",
                                 "SIGKILL to the launcher alone"])
def test_an_interrupted_two_process_run_resumes_to_the_same_model_with_the_same_world_size(uninterrupted, tmp_path,
                                                                                           how):
    reference, params = uninterrupted
    layout = project_copy(reference, tmp_path / "project", params)
    for leftover in ("models", "metrics", "plots"):
        shutil.rmtree(layout.root / leftover, ignore_errors=True)
    proc = start(layout)
    progress = wait_for_checkpoint(layout.last_checkpoint, proc)
    workers = children(proc.pid)
    assert len(workers) == 2
    if how == "SIGKILL to every process":
        for pid in [proc.pid, *workers]:  # as when the node goes down: nobody saves anything more
            os.kill(pid, signal.SIGKILL)
    elif how == "SIGTERM to rank 1 alone":
        ranks = {int(dict(line.split("=", 1) for line in Path(f"/proc/{pid}/environ").read_bytes()
                          .decode().split("\0") if "=" in line)["RANK"]): pid for pid in workers}
        os.kill(ranks[1], signal.SIGTERM)
    else:  # the agent forwards a SIGTERM; killed outright, its workers hear of it from the kernel
        os.kill(proc.pid, signal.SIGTERM if how.startswith("SIGTERM") else signal.SIGKILL)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode != 0
    if how.startswith("SIGTERM"):
        assert "stopped by signal 15" in output and "run the stage again to resume" in output
    deadline = time.time() + 120
    while any(alive(pid) for pid in workers):  # no orphan trains on
        assert time.time() < deadline, "a training process outlived its launcher"
        time.sleep(0.1)
    if how == "SIGKILL to the launcher alone":  # the workers stopped at one update and saved it
        stopped = torch.load(layout.last_checkpoint, weights_only=True)["progress"]
        assert stopped["step"] >= progress["step"] and not stopped["stopped"]
    assert not layout.model.exists()
    kept = layout.last_checkpoint.read_bytes()
    assert torch.load(layout.last_checkpoint, weights_only=True)["world_size"] == 2

    for nproc in (1, 3):  # another world size would not continue the same run: refused, nothing changed
        write_params(layout.root, with_train(params, nproc=nproc))
        refused = start(layout)
        message = refused.communicate(timeout=120)[0]
        assert refused.returncode == 1, message
        assert f"written by a training of 2 process(es), and this one has {nproc}" in message
        assert layout.last_checkpoint.read_bytes() == kept and not layout.model.exists()

    write_params(layout.root, params)
    output = train_stage(layout)
    assert "resuming from" in output and f"epoch {progress['epoch']}" in output
    assert json.loads((layout.metrics / "train.json").read_text()) == \
        json.loads((reference.metrics / "train.json").read_text())
    assert layout.model.read_bytes() == reference.model.read_bytes()


def test_torchrun_with_another_count_than_train_nproc_is_refused(trained_project, trained_params, tmp_path):
    layout = project_copy(trained_project, tmp_path / "project", with_train(trained_params, nproc=2))
    env = dict(os.environ, RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1")
    proc = subprocess.run([sys.executable, str(layout.root / "stages" / "train.py")], cwd=layout.root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "1 training processes run on this node, but params.yaml says train.nproc: 2" in proc.stderr


def test_several_nodes_need_a_rendezvous_endpoint_and_id():
    assert Rendezvous.from_env({}).nodes == 1
    assert Rendezvous.from_env({"S2S_NNODES": "2", "S2S_RDZV_ENDPOINT": "node0:29500", "S2S_RDZV_ID": "job7"}) \
        == Rendezvous(2, "node0:29500", "job7")
    with pytest.raises(S2SError, match="S2S_NNODES=2 needs S2S_RDZV_ENDPOINT"):
        Rendezvous.from_env({"S2S_NNODES": "2"})
    with pytest.raises(S2SError, match="whole number"):
        Rendezvous.from_env({"S2S_NNODES": "two"})


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_nodes_meet_at_a_rendezvous_and_only_the_dvc_node_writes(tiny_project, tiny_params, tmp_path):
    # two "nodes" on this machine, one process each: the stage (as DVC runs it) and torchrun
    params = with_train(tiny_params, nproc=1)
    dvc_node = project_copy(tiny_project, tmp_path / "node0", params)
    other_node = project_copy(tiny_project, tmp_path / "node1", params)
    endpoint = f"127.0.0.1:{free_port()}"
    stage = subprocess.Popen([sys.executable, str(dvc_node.root / "stages" / "train.py")], cwd=dvc_node.root,
                             env=dict(os.environ, S2S_NNODES="2", S2S_RDZV_ENDPOINT=endpoint, S2S_RDZV_ID="two"),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    torchrun = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node",
                               "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", "two",
                               str(other_node.root / "stages" / "train.py")], cwd=other_node.root,
                              capture_output=True, text=True, timeout=300)
    output = stage.communicate(timeout=300)[0]
    assert stage.returncode == 0 and torchrun.returncode == 0, output + torchrun.stderr
    assert json.loads((dvc_node.metrics / "speed.json").read_text())["processes"] == 2
    assert dvc_node.model.exists() and dvc_node.last_checkpoint.exists()
    assert output_files(other_node) == []  # its rank trained, and wrote nothing
    assert "train loss" not in torchrun.stderr
