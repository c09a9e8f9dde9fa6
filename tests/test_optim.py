import pytest
import torch
from torch.torch_version import TorchVersion

from s2s.config import TrainConfig
from s2s.optim import Schedule, build_optimizer, load_optimizer_state


def test_the_optimizer_is_fused_adam_on_the_cpu_with_adams_update():
    torch.manual_seed(0)
    weights = [torch.nn.Linear(7, 5) for _ in range(2)]
    weights[1].load_state_dict(weights[0].state_dict())
    fused = build_optimizer(weights[0], 0.01)
    plain = torch.optim.Adam(weights[1].parameters(), lr=0.01, foreach=False)
    assert fused.param_groups[0]["fused"] == (TorchVersion(torch.__version__) >= (2, 4))
    for _ in range(3):
        x = torch.randn(4, 7)
        for model, optimizer in zip(weights, (fused, plain)):
            optimizer.zero_grad()
            model(x).square().sum().backward()
            optimizer.step()
    for a, b in zip(weights[0].parameters(), weights[1].parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_torch_before_2_4_gets_adam_unfused_on_the_cpu(monkeypatch):
    monkeypatch.setattr(torch, "__version__", "2.3.1")
    assert not build_optimizer(torch.nn.Linear(3, 2), 0.01).param_groups[0]["fused"]


@pytest.mark.parametrize("saved_fused", [False, True])
def test_a_checkpoints_optimizer_state_keeps_this_runs_kernel(saved_fused):
    """A checkpoint of per-tensor Adam (older s2s) resumes fused, and a fused one resumes where torch has
    no fused kernel; the moments carry over either way."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    saved = torch.optim.Adam(model.parameters(), lr=0.01, fused=saved_fused)
    model(torch.randn(4, 3)).sum().backward()
    saved.step()
    optimizer = build_optimizer(model, 0.01)
    if saved_fused:
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)  # as torch < 2.4 builds it on the CPU
    load_optimizer_state(optimizer, saved.state_dict())
    assert bool(optimizer.param_groups[0]["fused"]) == (not saved_fused)
    moments = saved.state_dict()["state"][0]["exp_avg"]
    assert torch.equal(optimizer.state_dict()["state"][0]["exp_avg"], moments)
    optimizer.step()


def test_schedules_follow_their_formulas():
    model = torch.nn.Linear(2, 2)
    optimizer = build_optimizer(model, 0.01)
    warmup = Schedule(optimizer, TrainConfig(lr=0.01, lr_schedule="inverse_sqrt", warmup_steps=4))
    rates = []
    for _ in range(8):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        warmup.after_step()
        warmup.after_epoch(1.0)  # per-epoch calls do nothing to a per-step schedule
    assert rates == pytest.approx([0.01 * min((s + 1) / 4, (4 / (s + 1)) ** 0.5) for s in range(8)])

    optimizer = build_optimizer(model, 0.01)
    plateau = Schedule(optimizer, TrainConfig(lr=0.01, lr_schedule="plateau", lr_decay=0.5, lr_patience=0,
                                              min_lr=0.003))
    for valid_loss in (2.0, 1.0, 1.5, 1.4, 1.3):
        plateau.after_step()  # per-step calls do nothing to a per-epoch schedule
        plateau.after_epoch(valid_loss)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.003)  # halved twice, floored at min_lr

    restored = Schedule(build_optimizer(model, 0.01), TrainConfig(lr=0.01, lr_schedule="plateau"))
    restored.load_state_dict(plateau.state_dict())
    assert restored.state_dict()["best"] == plateau.state_dict()["best"] == 1.0
    constant = Schedule(build_optimizer(model, 0.01), TrainConfig(lr_schedule="constant"))
    assert constant.state_dict() == {}
