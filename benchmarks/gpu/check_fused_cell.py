"""Check the fused CUDA recurrent step against the gate math, forward and backward.

    PYTHONPATH=src python benchmarks/gpu/check_fused_cell.py

:func:`s2s.model.recurrence.recurrent_step` runs the fused ``nn.GRUCell`` /
``nn.LSTMCell`` kernels on CUDA tensors and the gate math elsewhere. This draws
fresh random gates and states, runs the step on the GPU (float32, and bf16 as
under autocast) and in float64 on the CPU, and compares the new state and the
gradients of a random projection of it by ||out - ref|| / ||ref||. Exits 1 if
any error is over its tolerance (float32 1e-5, bf16 2e-2).
"""

from __future__ import annotations

import sys

import torch

from s2s.model.recurrence import recurrent_step

TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 2e-2}


def run_step(tensors: dict[str, torch.Tensor], lstm: bool, probe: torch.Tensor) -> dict[str, torch.Tensor]:
    """The new h (and c), and the gradients of sum(probe * h) w.r.t. every input."""
    leaves = {k: v.detach().clone().requires_grad_(True) for k, v in tensors.items()}
    state = (leaves["h"], leaves["c"] if lstm else None)
    h, c = recurrent_step(leaves["gates"], state, leaves["weight_hh"], leaves["bias_hh"], lstm)
    (h.float() * probe.to(h.device)).sum().backward()
    out = {"h": h}
    if lstm:
        out["c"] = c
    out.update({f"grad_{k}": v.grad for k, v in leaves.items() if lstm or k != "c"})
    return out


def main() -> int:
    assert torch.cuda.is_available(), "needs a CUDA device"
    worst = 0.0
    failed = False
    for lstm in (False, True):
        for dtype in (torch.float32, torch.bfloat16):
            batch, hidden, k = 37, 96, 4 if lstm else 3
            ref = {"gates": torch.randn(batch, k * hidden, dtype=torch.float64),
                   "h": torch.randn(batch, hidden, dtype=torch.float64).tanh(),
                   "c": torch.randn(batch, hidden, dtype=torch.float64),
                   "weight_hh": torch.randn(k * hidden, hidden, dtype=torch.float64) / hidden ** 0.5,
                   "bias_hh": torch.randn(k * hidden, dtype=torch.float64) * 0.1}
            probe = torch.randn(batch, hidden, dtype=torch.float64)
            expected = run_step(ref, lstm, probe)
            got = run_step({k: v.to("cuda", dtype) for k, v in ref.items()}, lstm, probe.float())
            for name, value in expected.items():
                error = ((got[name].double().cpu() - value).norm() / value.norm()).item()
                ok = error <= TOLERANCE[dtype] and torch.isfinite(got[name]).all().item()
                failed |= not ok
                worst = max(worst, error)
                print(f"{'lstm' if lstm else 'gru ':4} {str(dtype):15} {name:16} rel. error {error:.2e} "
                      f"{'ok' if ok else 'FAILED'}")
    print("fused cell check:", "FAILED" if failed else "passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
