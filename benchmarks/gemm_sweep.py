"""MKL (PyTorch's CPU ``F.linear``) against oneDNN at decoding's matrix products, in one process.

    python benchmarks/gemm_sweep.py [--threads 2] [--reps 100]

For each (rows, in, out) of the peer model's decoding step (batch 64 greedy,
batch 64 x beam 5, batch 1) it times, alternated in rounds so that the
machine's drift hits all alike: ``F.linear``; oneDNN with the plain weight
(what :func:`s2s.model.gemm.linear` runs); oneDNN with the weight in its
blocked layout (what :class:`s2s.model.gemm.Linear` runs). Prints a Markdown
table of the best round's milliseconds, the ratios to ``F.linear``, and each
result's largest difference from a float64 product.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from s2s.model.gemm import onednn_linear_op

SHAPES = [  # (rows, in, out): the peer model at batch 64 greedy, beam 5 (320 rows), batch 1
    (64, 512, 8000), (64, 768, 1536), (64, 512, 1536), (64, 1024, 512), (64, 512, 512),
    (320, 512, 8000), (320, 768, 1536), (1, 512, 8000), (1, 768, 1536),
]


def best_ms(runs: dict, reps: int, rounds: int) -> dict[str, float]:
    """Each run's best of ``rounds`` mean times of ``reps`` calls, in ms; the runs take turns in each round."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():
        run()
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            for _ in range(reps):
                run()
            times[name].append((time.perf_counter() - start) / reps * 1e3)
    return {name: min(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    onednn = onednn_linear_op()
    if onednn is None:
        raise SystemExit("this PyTorch build has no oneDNN linear (torch.ops.mkldnn._linear_pointwise)")
    print(f"torch {torch.__version__}, {args.threads} threads\n")
    print("| rows x in x out | F.linear ms | oneDNN ms | blocked ms | F.linear / oneDNN | F.linear / blocked "
          "| max error F.linear / oneDNN |")
    print("|---|---|---|---|---|---|---|")
    for rows, dim_in, dim_out in SHAPES:
        torch.manual_seed(0)
        x, weight, bias = torch.randn(rows, dim_in), torch.randn(dim_out, dim_in), torch.randn(dim_out)
        blocked = torch.ops.mkldnn._reorder_linear_weight(weight, 64)
        runs = {"mkl": lambda: F.linear(x, weight, bias),
                "onednn": lambda: onednn(x, weight, bias, "none", [], ""),
                "blocked": lambda: onednn(x, blocked, bias, "none", [], "")}
        times = best_ms(runs, args.reps, args.rounds)
        exact = F.linear(x.double(), weight.double(), bias.double())
        errors = [(runs[name]().double() - exact).abs().max().item() for name in ("mkl", "onednn")]
        print(f"| {rows} x {dim_in} x {dim_out} | {times['mkl']:.3f} | {times['onednn']:.3f} | "
              f"{times['blocked']:.3f} | {times['mkl'] / times['onednn']:.2f}x | "
              f"{times['mkl'] / times['blocked']:.2f}x | {errors[0]:.1e} / {errors[1]:.1e} |")


if __name__ == "__main__":
    main()
