"""What building batches costs the training loop, and what the background thread saves.

On a tensorized project (``--root``, default: this checkout), runs the training loop's updates
(``s2s.train.update_batches`` + ``optimizer_step``, the default params) for ``--updates`` updates
with the batches built in the loop (prefetch depth 0) and by the background thread (depth 2),
alternating, ``--rounds`` times each, and prints wall seconds per update of both, their ratio,
and the time ``update_batches`` alone takes per update. Same updates, same order each run.

    PYTHONPATH=src python benchmarks/scale/prefetch_ab.py --root . --updates 20 --rounds 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from s2s.config import load_params
from s2s.device import set_threads
from s2s.layout import Layout
from s2s.optim import build_optimizer
from s2s.prefetch import prefetched
from s2s.subword import Vocabs
from s2s.tensors import ParallelData
from s2s.train import build_model, epoch_updates, optimizer_step, update_batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    layout = Layout(args.root.resolve())
    params = load_params(layout.params)
    set_threads(params.train.threads)
    data = ParallelData.load(layout.split_tensors("train"))
    vocabs = Vocabs.load(layout.spm)
    groups = epoch_updates(data, params.train, 1)[:args.updates]
    device = torch.device("cpu")
    started = time.perf_counter()
    for group in groups:
        update_batches(data, group)
    collate_ms = 1000 * (time.perf_counter() - started) / len(groups)
    walls: dict[int, list[float]] = {0: [], 2: []}
    for _ in range(args.rounds):
        for depth in (0, 2):
            torch.manual_seed(params.train.seed)
            model = build_model(params.model, vocabs).train()
            optimizer = build_optimizer(model, params.train.lr)
            started = time.perf_counter()
            for batches in prefetched(groups, lambda g: update_batches(data, g), depth):
                optimizer_step(model, optimizer, batches, params.train, device, None)
            walls[depth].append(1000 * (time.perf_counter() - started) / len(groups))
    inline, ahead = statistics.median(walls[0]), statistics.median(walls[2])
    print(f"{len(groups)} updates x {args.rounds} rounds, {torch.get_num_threads()} threads, {len(data):,} pairs")
    print(f"update_batches alone: {collate_ms:.1f} ms per update")
    print(f"batches built in the loop: median {inline:.0f} ms per update (runs {', '.join(f'{w:.0f}' for w in walls[0])})")
    print(f"built by the thread:       median {ahead:.0f} ms per update (runs {', '.join(f'{w:.0f}' for w in walls[2])})")
    print(f"ratio thread / loop: {ahead / inline:.3f}")


if __name__ == "__main__":
    main()
