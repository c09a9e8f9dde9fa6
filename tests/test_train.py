import dataclasses
import math

import pytest
import torch

from s2s.errors import S2SError
from s2s.subword import Vocabs
from s2s.tensors import ParallelData
from s2s.train import load_model, resolve_device, train


def run(layout, params, model_path):
    return train(params, ParallelData.load(layout.tensors / "train.pt"),
                 ParallelData.load(layout.tensors / "valid.pt"), Vocabs.load(layout.spm), layout.spm, model_path)


class Recorder:
    def __init__(self):
        self.epochs = []

    def log_epoch(self, epoch, metrics):
        self.epochs.append((epoch, metrics))


def test_training_lowers_the_loss_and_writes_a_loadable_checkpoint(tiny_project, tiny_params):
    params = dataclasses.replace(tiny_params, train=dataclasses.replace(tiny_params.train, max_epochs=3))
    recorder = Recorder()
    result = train(params, ParallelData.load(tiny_project.tensors / "train.pt"),
                   ParallelData.load(tiny_project.tensors / "valid.pt"), Vocabs.load(tiny_project.spm),
                   tiny_project.spm, tiny_project.model, recorder)
    losses = [m["valid/loss"] for _, m in recorder.epochs]
    assert [e for e, _ in recorder.epochs] == [1, 2, 3] and losses[-1] < losses[0]
    assert set(recorder.epochs[0][1]) == {"train/loss", "valid/loss", "valid/ppl", "tokens_per_s", "lr"}
    assert result.quality()["best_valid_ppl"] == pytest.approx(math.exp(min(losses)), rel=1e-4)
    model, checkpoint = load_model(tiny_project.model, torch.device("cpu"))
    assert checkpoint["epoch"] == result.best_epoch and checkpoint["step"] > 0
    assert checkpoint["params"]["model"]["hidden"] == 32 and not model.training
    assert not list(tiny_project.model.parent.glob("*.part"))


def test_two_cpu_runs_are_identical(tiny_project, tiny_params, tmp_path):
    first = run(tiny_project, tiny_params, tmp_path / "a.pt")
    second = run(tiny_project, tiny_params, tmp_path / "b.pt")
    assert first.quality() == second.quality()
    a = torch.load(tmp_path / "a.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "b.pt", weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_early_stopping_after_patience(tiny_project, tiny_params, tmp_path):
    # A learning rate far too high makes the valid loss stop improving.
    train_config = dataclasses.replace(tiny_params.train, max_epochs=10, lr=1.0, patience=1,
                                       lr_schedule="constant")
    result = run(tiny_project, dataclasses.replace(tiny_params, train=train_config), tmp_path / "m.pt")
    assert result.epochs < 10 and result.epochs == result.best_epoch + 1


def test_cuda_request_without_cuda_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(S2SError, match="train.device: cuda requested"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(S2SError, match="dvc repro train"):
        load_model(tmp_path / "none.pt", torch.device("cpu"))
