"""Where a GPU training step's time goes: kernels per update, GPU busy time and host time.

    PYTHONPATH=src python benchmarks/gpu/profile_step.py [--steps 20] [-S key=value ...]

Runs ``s2s train``'s update (:func:`s2s.train.optimizer_step`) on the real data
with the current params: 10 warm-up updates, then ``--steps`` updates under
``torch.profiler``. Prints the wall time per update, the GPU's busy time per
update (the sum of its kernels' durations), the kernel launches per update,
and the operators that take most host time. When the GPU is busy for a small
part of the wall time, the step is bound by the host launching kernels, not by
the GPU's arithmetic.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from s2s.config import load_params_with_overrides
from s2s.device import resolve_device, resolve_precision
from s2s.layout import Layout
from s2s.optim import build_optimizer
from s2s.subword import Vocabs
from s2s.tensors import ParallelData
from s2s.train import build_model, epoch_updates, optimizer_step, update_batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("-S", "--set-param", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    params = load_params_with_overrides(args.root / "params.yaml", args.overrides)
    layout = Layout(args.root)
    device = resolve_device(params.train.device)
    dtype = resolve_precision(params.train.precision, device)
    data = ParallelData.load(layout.split_tensors("train"))
    torch.manual_seed(params.train.seed)
    model = build_model(params.model, Vocabs.load(layout.spm)).to(device).train()
    optimizer = build_optimizer(model, params.train.lr)
    groups = epoch_updates(data, params.train, epoch=1)[:10 + args.steps]
    for group in groups[:10]:
        optimizer_step(model, optimizer, update_batches(data, group), params.train, device, dtype)
    cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sync()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        started = time.perf_counter()
        for group in groups[10:]:
            optimizer_step(model, optimizer, update_batches(data, group), params.train, device, dtype)
        sync()
        wall = time.perf_counter() - started
    busy_us = sum(e.self_device_time_total for e in prof.key_averages())  # all kernels, microseconds
    kernels = (sum(1 for e in prof.events() if e.device_type.name == "CUDA")
               or sum(len(e.kernels) for e in prof.events()))
    steps = len(groups) - 10
    print(f"{steps} updates: {wall / steps * 1e3:.1f} ms wall each, GPU busy {busy_us / steps / 1e3:.1f} ms "
          f"({busy_us / 1e6 / wall:.0%}), {kernels / steps:.0f} kernels per update, "
          f"{1e3 * wall / max(kernels, 1):.1f} us wall per kernel")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18, max_name_column_width=40))


if __name__ == "__main__":
    main()
