"""The default experiment's train and evaluate stages on a GPU, timed, without DVC.

The lent GPU machines have PyTorch, sentencepiece, sacrebleu, pyyaml and typer but
neither dvc nor dvclive, so this runs what `dvc repro train evaluate` runs (the same
``run`` of ``stages/train.py`` and ``stages/evaluate.py``), with the per-epoch records printed
instead of logged through dvclive, then `s2s bench` of the trained model. The data
stages must have run in ``--root`` (carry its ``data/`` to the machine).

    PYTHONPATH=src python benchmarks/gpu/default_run.py --root . --out result.json [-S key=value ...]

Writes one JSON: the train stage's wall time (validation, averaging and saving
included), its train.json / speed.json figures, the evaluate stage's, the peak
GPU memory of training, and the bench of the trained model with its model FLOP
utilisation against the measured and the datasheet bf16 matrix-product rate.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import math
import sys
import time
from pathlib import Path

import torch

from s2s.bench import bench, format_table
from s2s.checkpoint import load_model
from s2s.config import load_params_with_overrides
from s2s.device import resolve_device
from s2s.layout import Layout
from s2s.subword import Vocabs
from s2s.tensors import ParallelData
from s2s.textio import write_json

STAGES = Path(__file__).resolve().parents[2] / "stages"


def stage(name: str):
    """The module of ``stages/<name>.py`` (its ``run(params, layout)`` is the stage)."""
    sys.path.insert(0, str(STAGES))  # where the scripts find `common`
    spec = importlib.util.spec_from_file_location(f"stages_{name}", STAGES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

H100_BF16_DENSE_FLOPS = 790e12  # the issue's figure for the H100's bf16 matrix rate (measured ~798 here)


class PrintLogger:
    """Prints each epoch's record as one JSON line and keeps them."""

    def __init__(self) -> None:
        self.records: list[dict] = []

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        record = {"epoch": epoch, **{k: round(v, 5) for k, v in metrics.items()}}
        self.records.append(record)
        print(json.dumps(record), flush=True)



def _gpu_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("-S", "--set-param", dest="overrides", action="append", default=[])
    parser.add_argument("--bench-steps", type=int, default=100)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    params = load_params_with_overrides(args.root / "params.yaml", args.overrides)
    layout = Layout(args.root)
    device = resolve_device(params.train.device)
    vocabs = Vocabs.load(layout.spm)
    train_data = ParallelData.load(layout.split_tensors("train"))
    for stale in (layout.model, layout.last_checkpoint):  # a full run from scratch
        stale.unlink(missing_ok=True)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    logger = PrintLogger()
    started = time.perf_counter()
    result = stage("train").run(params, layout, logger)  # the train stage, epoch records printed
    train_wall = time.perf_counter() - started
    train_peak_mb = torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else math.nan

    started = time.perf_counter()
    stage("evaluate").run(params, layout)
    evaluate_wall = time.perf_counter() - started

    model, _ = load_model(layout.model, device)
    test = ParallelData.load(layout.split_tensors(params.data.test_sets[0]))
    figures = bench(params, train_data, test, vocabs, device, model, steps=args.bench_steps)
    print(format_table(figures), flush=True)
    model_flops_per_s = figures.train_tgt_tokens_per_s * figures.train_flops_per_tgt_token
    payload = {
        "device": _gpu_name(device), "torch": torch.__version__, "overrides": args.overrides,
        "train_stage_wall_s": round(train_wall, 1), "evaluate_stage_wall_s": round(evaluate_wall, 1),
        "train_peak_memory_mb": round(train_peak_mb, 1),
        "train": result.quality(), "speed": result.speed(), "epochs": logger.records,
        "eval": json.loads((layout.metrics / "eval.json").read_text()),
        "decode_speed": json.loads((layout.metrics / "decode_speed.json").read_text()),
        "bench": figures.to_dict(),
        "bench_model_flops_per_s": model_flops_per_s,
        "bench_mfu_of_measured_matmul": model_flops_per_s / figures.matmul_flops_per_s,
        "bench_mfu_of_790_tflops": model_flops_per_s / H100_BF16_DENSE_FLOPS,
    }
    write_json(args.out, payload)
    print(f"train stage {train_wall:.1f} s wall ({result.progress.seconds:.1f} s in updates, "
          f"{result.progress.epoch - 1} epochs, {result.progress.step} steps); evaluate {evaluate_wall:.1f} s; "
          f"test BLEU {payload['eval'][params.data.test_sets[0]]['bleu']}")


if __name__ == "__main__":
    main()
