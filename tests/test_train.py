import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import ROOT

from s2s.averaging import average_states
from s2s.checkpoint import load_model, resume_point
from s2s.config import params_to_dict
from s2s.layout import Layout
from s2s.signals import TrainingInterrupted
from s2s.subword import Vocabs
from s2s.tensors import ParallelData
from s2s.train import build_model, epoch_updates, optimizer_step, train, update_batches
from s2s.validation import validation_loss


def run(layout, params, model_path, last_path=None, logger=None):
    return train(params, ParallelData.load(layout.split_tensors("train")),
                 ParallelData.load(layout.split_tensors("valid")), Vocabs.load(layout.spm), model_path,
                 last_path or model_path.with_name(model_path.stem + ".last.pt"), logger)


def with_train(params, **changes):
    return dataclasses.replace(params, train=dataclasses.replace(params.train, **changes))


class Recorder:
    def __init__(self):
        self.epochs = []

    def log_epoch(self, epoch, metrics):
        self.epochs.append((epoch, metrics))


def test_training_lowers_the_loss_and_writes_a_self_contained_model(tiny_project, tiny_params):
    recorder = Recorder()
    result = run(tiny_project, with_train(tiny_params, max_epochs=3), tiny_project.model, logger=recorder)
    losses = [m["valid/loss"] for _, m in recorder.epochs]
    assert [e for e, _ in recorder.epochs] == [1, 2, 3] and losses[-1] < losses[0]
    assert set(recorder.epochs[0][1]) == {"train/loss", "valid/loss", "valid/ppl", "valid/bleu", "lr",
                                          "grad_norm", "tokens_per_s"}
    assert result.quality()["best_valid_ppl"] == pytest.approx(math.exp(min(losses)), rel=1e-4)
    assert result.quality()["epochs"] == 3
    model, checkpoint = load_model(tiny_project.model, torch.device("cpu"))
    assert checkpoint["epoch"] == result.progress.best_epoch and checkpoint["step"] == result.progress.step
    assert checkpoint["params"]["model"]["hidden"] == 32 and not model.training
    vocabs = Vocabs.from_protos(checkpoint["spm"])  # the model carries its vocabulary
    assert vocabs.tgt.get_piece_size() == model.output.out_features
    assert not list(tiny_project.model.parent.glob("*.part"))


def quality_of(project: Layout) -> dict:
    """The ``quality()`` of the training that wrote ``project``'s ``metrics/train.json``."""
    return json.loads((project.metrics / "train.json").read_text())


def test_two_cpu_runs_are_identical(trained_project, trained_params, tmp_path):
    """This run and the one the train stage made of the same params and data, earlier in this process."""
    again = run(trained_project, trained_params, tmp_path / "models" / "model.pt")
    assert json.loads(json.dumps(again.quality())) == quality_of(trained_project)
    assert (tmp_path / "models" / "model.pt").read_bytes() == trained_project.model.read_bytes()


def test_early_stopping_after_patience(tiny_project, tiny_params, tmp_path):
    # A learning rate far too high makes the valid loss stop improving.
    params = with_train(tiny_params, max_epochs=10, lr=1.0, patience=1, lr_schedule="constant")
    result = run(tiny_project, params, tmp_path / "m.pt")
    assert result.quality()["epochs"] < 10
    assert result.quality()["epochs"] == result.progress.best_epoch + 1


@pytest.mark.parametrize("schedule", ["inverse_sqrt", "constant", "plateau"])
def test_schedules_and_bleu_early_stopping_and_accumulation_train(tiny_project, tiny_params, tmp_path, schedule):
    params = with_train(tiny_params, lr_schedule=schedule, warmup_steps=5, early_stop_metric="bleu", accumulate=2)
    recorder = Recorder()
    result = run(tiny_project, params, tmp_path / "m.pt", logger=recorder)
    # an update is train.accumulate batches: half as many updates as batches, rounded up
    data = ParallelData.load(tiny_project.split_tensors("train"))
    batches = [len(epoch_updates(data, with_train(params, accumulate=1).train, epoch)) for epoch in (1, 2)]
    steps = [math.ceil(n / 2) for n in batches]
    assert result.quality()["steps"] == sum(steps) and result.quality()["epochs"] == 2
    lrs = [m["lr"] for _, m in recorder.epochs]
    lr = params.train.lr
    if schedule == "constant":
        assert lrs == [lr] * 2
    if schedule == "inverse_sqrt":  # linear warmup over 5 steps, then lr * sqrt(5 / step), per step
        assert lrs == pytest.approx([lr * min(n / 5, math.sqrt(5 / n)) for n in (steps[0] + 1, sum(steps) + 1)])
    if schedule == "plateau":  # lowered only after an epoch without a better valid BLEU
        assert lrs[0] == lr


def test_one_batch_of_k_buckets_makes_the_update_of_k_accumulated_batches(tiny_project, tiny_params):
    """train.buckets_per_batch: k joins the k batches that train.accumulate: k would sum, in one padded
    batch that the packed decoder runs without its padding: the same update, up to float rounding."""
    data = ParallelData.load(tiny_project.split_tensors("train"))
    config = with_train(tiny_params, batch_tokens=120, buckets_per_batch=3).train
    joined = epoch_updates(data, config, epoch=1)
    accumulated = epoch_updates(data, dataclasses.replace(config, batch_tokens=40, buckets_per_batch=1,
                                                          accumulate=3), epoch=1)
    assert [len(g) for g in joined[:2]] == [1, 1] and [len(g) for g in accumulated[:2]] == [3, 3]
    assert np.array_equal(joined[0][0], np.concatenate(accumulated[0]))
    weights = []
    for group in (joined[0], accumulated[0]):
        torch.manual_seed(0)
        model = build_model(tiny_params.model, Vocabs.load(tiny_project.spm))
        optimizer = torch.optim.SGD(model.parameters(), lr=1.0)  # the weights move by the gradient itself
        loss, tokens, _ = optimizer_step(model, optimizer, update_batches(data, group), config,
                                         torch.device("cpu"), None)
        weights.append((loss, tokens, torch.cat([p.detach().flatten() for p in model.parameters()])))
    (loss_a, tokens_a, a), (loss_b, tokens_b, b) = weights
    assert tokens_a == tokens_b and loss_a == pytest.approx(loss_b, rel=1e-5)
    assert torch.allclose(a, b, atol=1e-6)


def test_the_average_of_the_last_epochs_is_validated_and_kept_when_better(tiny_project, tiny_params, tmp_path):
    params = with_train(tiny_params, max_epochs=4, average_last=3)
    result = run(tiny_project, params, tmp_path / "m.pt", tmp_path / "last.pt")
    quality = result.quality()
    assert (quality["average_first_epoch"], quality["average_last_epoch"]) == (2, 4)
    per_epoch = result.progress.step // 4
    assert (quality["average_first_step"], quality["average_last_step"]) == (2 * per_epoch, 4 * per_epoch)
    last = torch.load(tmp_path / "last.pt", weights_only=False)
    assert len(last["recent_models"]) == 3
    expected = average_states(last["recent_models"]) if result.average.chosen else last["best_model"]
    model, checkpoint = load_model(tmp_path / "m.pt", torch.device("cpu"))
    assert all(torch.equal(value, expected[key]) for key, value in model.state_dict().items())
    assert checkpoint["average"]["chosen"] == result.average.chosen == quality["model_is_average"]
    assert checkpoint["epoch"] == (None if result.average.chosen else result.progress.best_epoch)
    # The reported loss is the average's own, and the choice follows the early-stopping metric.
    averaged_model, _ = load_model(tmp_path / "m.pt", torch.device("cpu"))
    averaged_model.load_state_dict(average_states(last["recent_models"]))
    loss = validation_loss(averaged_model, ParallelData.load(tiny_project.split_tensors("valid")),
                           params.train.batch_tokens, torch.device("cpu"))
    assert loss == pytest.approx(quality["average_valid_loss"], abs=1e-6)
    assert result.average.chosen == (loss < quality["best_valid_loss"])


def test_without_averaging_the_model_is_the_best_epoch(trained_project, trained_params):
    assert trained_params.train.average_last == 0
    quality = quality_of(trained_project)
    assert quality["model_is_average"] is False and "average_valid_loss" not in quality
    model, checkpoint = load_model(trained_project.model, torch.device("cpu"))
    last = torch.load(trained_project.last_checkpoint, weights_only=False)
    assert checkpoint["epoch"] == quality["best_epoch"] == last["progress"]["best_epoch"]
    best = last["best_model"]
    assert set(best) == set(model.state_dict())
    assert all(torch.equal(value, best[key]) for key, value in model.state_dict().items())


def start_training(root: Path, params: dict) -> subprocess.Popen:
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return subprocess.Popen([sys.executable, str(root / "stages" / "train.py")], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_checkpoint(last: Path, proc: subprocess.Popen, timeout: float = 120.0) -> dict:
    """Poll until the resume checkpoint shows a run in the middle of an epoch after the first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "training ended before it could be interrupted"
        if last.exists():
            progress = torch.load(last, weights_only=False)["progress"]
            if progress["epoch"] >= 2 and progress["batches_done"] > 0:
                return progress
        time.sleep(0.02)
    raise AssertionError("no mid-epoch checkpoint appeared")


@pytest.mark.parametrize("kill", [signal.SIGKILL, signal.SIGTERM])
def test_an_interrupted_run_resumes_to_the_same_model(tiny_project, tiny_params, kill):
    # More data and epochs than the other tests, so there is time to interrupt mid-epoch; the
    # average of the last epochs must survive the interruption too.
    params = params_to_dict(with_train(tiny_params, max_epochs=4, checkpoint_every=2, batch_tokens=120,
                                       average_last=3))
    reference = Layout(tiny_project.root.parent / "reference")
    for root in (tiny_project.root, reference.root):  # the stage script runs the code beside it
        shutil.copytree(ROOT / "stages", root / "stages", ignore=shutil.ignore_patterns("__pycache__"))
        (root / "src").symlink_to(ROOT / "src", target_is_directory=True)
    shutil.copytree(tiny_project.root / "data", reference.root / "data")
    proc = start_training(reference.root, params)
    assert proc.wait(timeout=300) == 0, proc.stdout.read()

    proc = start_training(tiny_project.root, params)
    progress = wait_for_checkpoint(tiny_project.last_checkpoint, proc)
    proc.send_signal(kill)
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode != 0
    if kill == signal.SIGTERM:
        assert "run the stage again to resume" in output
    assert not tiny_project.model.exists()
    proc = start_training(tiny_project.root, params)
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, output
    assert "resuming from" in output and f"epoch {progress['epoch']}" in output
    assert json.loads((tiny_project.metrics / "train.json").read_text()) == \
        json.loads((reference.metrics / "train.json").read_text())
    assert tiny_project.model.read_bytes() == reference.model.read_bytes()


def test_a_signal_during_validation_stops_at_the_end_of_that_epoch(trained_project, trained_params, tmp_path,
                                                                    monkeypatch):
    import s2s.train as training

    def validate_and_get_stopped(*args):  # as if Ctrl-C came while the first epoch is validated
        os.kill(os.getpid(), signal.SIGINT)
        return validation_loss(*args)

    monkeypatch.setattr(training, "validation_loss", validate_and_get_stopped)
    last = tmp_path / "last.pt"
    with pytest.raises(TrainingInterrupted, match="epoch 2, step"):
        run(trained_project, trained_params, tmp_path / "models" / "model.pt", last)
    progress = torch.load(last, weights_only=False)["progress"]
    assert (progress["epoch"], progress["batches_done"]) == (2, 0)  # no update of epoch 2 was made
    assert not (tmp_path / "models" / "model.pt").exists()
    monkeypatch.setattr(training, "validation_loss", validation_loss)
    resumed = run(trained_project, trained_params, tmp_path / "models" / "model.pt", last)
    # the same as the run that was never stopped
    assert json.loads(json.dumps(resumed.quality())) == quality_of(trained_project)
    assert (tmp_path / "models" / "model.pt").read_bytes() == trained_project.model.read_bytes()


def step_params(params, layout, **changes):
    """Validation every third of an epoch (never on an epoch's end) and a stop in the middle of epoch 3."""
    per_epoch = len(epoch_updates(ParallelData.load(layout.split_tensors("train")), params.train, 1))
    assert per_epoch >= 6, per_epoch
    every = per_epoch // 3 + (per_epoch % (per_epoch // 3) == 0)
    return with_train(params, valid_every=every, max_steps=2 * per_epoch + per_epoch // 2, max_epochs=10,
                      **changes), per_epoch


def test_training_by_steps_validates_every_n_updates_and_stops_at_max_steps(tiny_project, tiny_params, tmp_path):
    params, per_epoch = step_params(tiny_params, tiny_project, average_last=2, patience=100)
    every, max_steps = params.train.valid_every, params.train.max_steps
    recorder = Recorder()
    result = run(tiny_project, params, tmp_path / "m.pt", logger=recorder)
    quality = result.quality()
    points = list(range(every, max_steps + 1, every))
    points += [max_steps] if points[-1] != max_steps else []  # where it stops, it validates
    assert quality["steps"] == max_steps and quality["epochs"] == 2  # stopped mid-epoch 3
    assert quality["validations"] == len(recorder.epochs) == len(points)
    assert [epoch for epoch, _ in recorder.epochs] == [1 + (step - 1) // per_epoch for step in points]
    losses = [m["valid/loss"] for _, m in recorder.epochs]
    assert quality["best_step"] == points[losses.index(min(losses))]
    assert (quality["average_first_step"], quality["average_last_step"]) == (points[-2], points[-1])
    _, checkpoint = load_model(tmp_path / "m.pt", torch.device("cpu"))
    assert checkpoint["step"] == max_steps


def test_early_stopping_by_steps_counts_validations(tiny_project, tiny_params, tmp_path):
    # A learning rate far too high makes the valid loss stop improving.
    params, _ = step_params(tiny_params, tiny_project, lr=1.0, lr_schedule="constant", patience=2, average_last=0)
    params = with_train(params, max_steps=50 * params.train.max_steps)
    recorder = Recorder()
    result = run(tiny_project, params, tmp_path / "m.pt", logger=recorder)
    best, bad, expected = math.inf, 0, None
    for number, (_, metrics) in enumerate(recorder.epochs, start=1):
        best, bad = (metrics["valid/loss"], 0) if metrics["valid/loss"] < best else (best, bad + 1)
        if bad >= 2:
            expected = number
            break
    assert expected is not None and len(recorder.epochs) == expected
    assert result.progress.step == expected * params.train.valid_every < params.train.max_steps


def test_a_run_by_steps_stopped_mid_epoch_resumes_to_the_same_model(tiny_project, tiny_params, tmp_path,
                                                                    monkeypatch):
    import s2s.train as training
    params, per_epoch = step_params(tiny_params, tiny_project, average_last=2, checkpoint_every=0)
    reference = run(tiny_project, params, tmp_path / "reference.pt", tmp_path / "reference.last.pt")
    calls = []

    def stopped_at_the_second_validation(*args):  # Ctrl-C while the second validation runs
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return validation_loss(*args)

    monkeypatch.setattr(training, "validation_loss", stopped_at_the_second_validation)
    last = tmp_path / "last.pt"
    with pytest.raises(TrainingInterrupted, match=f"step {2 * params.train.valid_every}"):
        run(tiny_project, params, tmp_path / "model.pt", last)
    progress = torch.load(last, weights_only=False)["progress"]
    assert 0 < progress["batches_done"] < per_epoch and progress["validations"] == 2  # mid-epoch
    monkeypatch.setattr(training, "validation_loss", validation_loss)
    resumed = run(tiny_project, params, tmp_path / "model.pt", last)
    assert json.loads(json.dumps(resumed.quality())) == json.loads(json.dumps(reference.quality()))
    assert (tmp_path / "model.pt").read_bytes() == (tmp_path / "reference.pt").read_bytes()


def test_a_finished_or_foreign_checkpoint_is_not_resumed(trained_project, trained_params, tmp_path):
    last = tmp_path / "last.pt"
    shutil.copy(trained_project.last_checkpoint, last)  # the finished run's
    assert resume_point(last, trained_params, ParallelData.load(trained_project.split_tensors("train"))) is None
    recorder = Recorder()
    again = run(trained_project, trained_params, tmp_path / "b.pt", last, recorder)
    assert [epoch for epoch, _ in recorder.epochs] == [1, 2]  # trained anew, every epoch, to the same result
    assert json.loads(json.dumps(again.quality())) == quality_of(trained_project)
    recorder = Recorder()
    other = run(trained_project, with_train(trained_params, lr=0.01), tmp_path / "c.pt", last, recorder)
    assert [epoch for epoch, _ in recorder.epochs] == [1, 2] and other.quality() != again.quality()


def test_a_non_finite_loss_stops_training_before_the_update_and_keeps_the_checkpoint(trained_project,
                                                                                    trained_params, tmp_path,
                                                                                    monkeypatch):
    from s2s.model import Seq2Seq
    from s2s.signals import TrainingDiverged
    params = with_train(trained_params, checkpoint_every=3)
    real_losses, calls = Seq2Seq.token_losses, []

    def blows_up_at_update_5(self, *args, **kwargs):
        calls.append(1)
        losses = real_losses(self, *args, **kwargs)
        return losses * float("nan") if len(calls) == 5 and self.training else losses
    monkeypatch.setattr(Seq2Seq, "token_losses", blows_up_at_update_5)
    last, model_path = tmp_path / "last.pt", tmp_path / "model.pt"
    with pytest.raises(TrainingDiverged, match=r"diverged in epoch 1, update 5: the loss is nan; .*last.pt "
                                               r"keeps the last checkpoint .* Lower train.lr \(now 0.002, e.g. "
                                               r"to 0.0005\) and keep train.clip_grad"):
        run(trained_project, params, model_path, last)
    assert not model_path.exists()
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint["progress"]["step"] == 3  # the checkpoint from before the blow-up
    assert all(torch.isfinite(t).all() for t in checkpoint["model"].values())


def test_a_nan_gradient_is_not_applied(trained_project, trained_params):
    vocabs = Vocabs.load(trained_project.spm)
    data = ParallelData.load(trained_project.split_tensors("train"))
    torch.manual_seed(0)
    model = build_model(trained_params.model, vocabs)
    optimizer = torch.optim.Adam(model.parameters())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    group = epoch_updates(data, trained_params.train, 1)[0]
    model.decoder.embed.weight.register_hook(lambda grad: grad * float("inf"))
    from s2s.train import NonFinite
    with pytest.raises(NonFinite, match="gradient norm"):
        optimizer_step(model, optimizer, update_batches(data, group), trained_params.train, torch.device("cpu"),
                       None)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_resume_refuses_a_checkpoint_with_non_finite_weights(trained_project, trained_params, tmp_path):
    from s2s.errors import S2SError
    checkpoint = torch.load(trained_project.last_checkpoint, weights_only=True)
    checkpoint["progress"]["stopped"] = False
    name = next(iter(checkpoint["model"]))
    checkpoint["model"][name][...] = float("nan")
    last = tmp_path / "last.pt"
    torch.save(checkpoint, last)
    with pytest.raises(S2SError, match=f"{last}: 1 weight tensors hold NaN .*first: {name}.*lower train.lr"):
        resume_point(last, trained_params, ParallelData.load(trained_project.split_tensors("train")))


def _train_rank(rank: int, port: int, root: str, params) -> None:
    """One of two gloo ranks: ``train`` into this rank's own directory, recording what it logs."""
    import os

    from s2s.distributed import World, joined

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    layout, mine = Layout(Path(root)), Path(root) / f"rank{rank}"
    recorder = Recorder()
    with joined(World(rank, rank, 2, 2), torch.device("cpu"), {}) as ranks:
        result = train(params, ParallelData.load(layout.split_tensors("train")),
                       ParallelData.load(layout.split_tensors("valid")), Vocabs.load(layout.spm),
                       mine / "model.pt", mine / "last.pt", recorder if ranks.is_writer else None, ranks)
    mine.mkdir(exist_ok=True)
    (mine / "report.json").write_text(json.dumps({"validations": len(recorder.epochs), "steps": result.progress.step,
                                                  "best_valid_loss": result.progress.best_valid_loss}))


def test_of_two_ranks_only_the_writer_writes_and_both_take_the_same_decisions(tiny_project, tiny_params):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    params = with_train(tiny_params, max_epochs=3, patience=1, checkpoint_every=3)
    mp.start_processes(_train_rank, args=(port, str(tiny_project.root), params), nprocs=2, start_method="spawn")
    writer, other = (tiny_project.root / f"rank{r}" for r in (0, 1))
    assert sorted(p.name for p in writer.iterdir()) == ["last.pt", "model.pt", "report.json"]
    assert sorted(p.name for p in other.iterdir()) == ["report.json"]  # nothing of training's
    reports = [json.loads((d / "report.json").read_text()) for d in (writer, other)]
    assert reports[0]["validations"] > 0 and reports[1]["validations"] == 0  # only the writer logs
    assert reports[0]["steps"] == reports[1]["steps"]  # stopped together, on the writer's figures
    assert reports[0]["best_valid_loss"] == reports[1]["best_valid_loss"]
    assert torch.load(writer / "last.pt", weights_only=True)["world_size"] == 2
