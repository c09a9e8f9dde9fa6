"""What the peer benchmark reports: the printed tables and the result file with its provenance.

Every result file opens with ``provenance``: the commit of the code that ran, whether the work tree
had changes (``dirty``, with ``git status --porcelain``'s lines), the full command line and the
machine's measured float32 matrix-product rate. Files written before run.py recorded it carry a
``provenance`` recovered afterwards, marked ``"recovered": true``, with null where nothing is known.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from environment import REPO
from s2s.atomic import write_text


@dataclass(frozen=True)
class Provenance:
    """Where a result comes from. ``commit`` and ``dirty`` are None outside a git checkout."""

    commit: str | None
    dirty: bool | None
    command: list[str]  # the interpreter, then sys.argv
    cwd: str
    matmul_flops_per_s: float  # the machine's float32 matrix-product rate at the start, best of three
    dirty_paths: list[str] = field(default_factory=list)  # `git status --porcelain` lines, at most 100
    recovered: bool = False  # True only in files whose provenance was reconstructed after the run

    @classmethod
    def collect(cls, matmul_rate: float, repo: Path = REPO) -> Provenance:
        """The provenance of this process: ``repo``'s HEAD and status now, and its command line."""
        def git(*args: str) -> str | None:
            try:
                done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
            except OSError:
                return None
            return done.stdout if done.returncode == 0 else None

        head, status = git("rev-parse", "HEAD"), git("status", "--porcelain")
        changes = status.splitlines() if status is not None else []
        return cls(commit=head.strip() if head else None, dirty=None if status is None else bool(changes),
                   command=[sys.executable, *sys.argv], cwd=os.getcwd(), matmul_flops_per_s=matmul_rate,
                   dirty_paths=changes[:100])


def run_record(root: Path, threads: int) -> dict:
    """The fields that open every result file after its provenance: when, where and on how many threads."""
    return {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "root": str(root), "host": platform.node(),
            "cpu_count": os.cpu_count(), "threads": threads}


def s2s_record(model, train: dict, decode: list[dict]) -> dict:
    """s2s's side of a result file (its BLEU is added by ``measure.add_bleu``)."""
    return {"system": "s2s", "params": model.num_parameters(), "threads": torch.get_num_threads(),
            "train": train, "decode": decode}


def write_result(path: Path, provenance: Provenance, result: dict) -> None:
    """``result`` as JSON at ``path`` (atomically), ``provenance`` first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps({"provenance": asdict(provenance), **result}, indent=1, ensure_ascii=False))


def _search(decode: dict) -> str:
    return "greedy" if decode["beam"] == 1 else f"beam {decode['beam']}"


def table(result: dict) -> str:
    """s2s, Joey NMT and s2s/Joey (or s2s - Joey) for training, decoding and BLEU."""
    s, j = result["s2s"], result["joeynmt"]
    rows = [("parameters", s["params"], j["params"], "{:,.0f}", None),
            ("train: target tokens/s", s["train"]["tgt_tokens_per_s"], j["train"]["tgt_tokens_per_s"], "{:,.1f}", "x"),
            ("train: seconds/update", s["train"]["seconds_per_step"], j["train"]["seconds_per_step"], "{:.3f}", None),
            ("train: real target tokens/update", s["train"]["mean_tgt_tokens_per_batch"],
             j["train"]["mean_tgt_tokens_per_batch"], "{:,.0f}", None),
            ("train: padding (target side)", s["train"]["padding_fraction"], j["train"]["padding_fraction"],
             "{:.1%}", None)]
    # Joey's smoothed loss is a KL divergence: add the entropy of its target distribution to compare.
    rows.append(("train: loss, mean of the last 10 updates", s["train"]["mean_loss_last10"],
                 j["train"]["mean_loss_last10"] + result["joey_target_entropy"], "{:.3f}", "-"))
    joey_decode = {d["name"]: d for d in j["decode"]}
    for d in s["decode"]:
        jd = joey_decode[d["name"]]
        label = f"decode b{d['batch_size']} {_search(d)} ({d['sentences']}): sent/s"
        rows.append((label, d["sentences_per_s"], jd["sentences_per_s"], "{:,.1f}", "x"))
    for name in ("greedy", "beam"):
        if name in s["bleu"]:
            rows.append((f"BLEU test 2016, {name} b64", s["bleu"][name], j["bleu"][name], "{:.2f}", "-"))
    width = max(len(r[0]) for r in rows) + 2
    lines = [f"{'':<{width}}{'s2s':>14}{'Joey NMT':>14}{'s2s/Joey':>11}"]
    for label, a, b, fmt, kind in rows:
        ratio = f"{a / b:.2f}x" if kind == "x" else (f"{a - b:+.2f}" if kind == "-" else "")
        lines.append(f"{label:<{width}}{fmt.format(a):>14}{fmt.format(b):>14}{ratio:>11}")
    return "\n".join(lines)


def same_weights_table(same_weights: dict) -> str:
    """The two decoders on one model: sentences/s, ratio, identical outputs, BLEU."""
    lines = [f"{'':<24}{'s2s sent/s':>12}{'Joey sent/s':>13}{'s2s/Joey':>10}{'same output':>13}"
             f"{'BLEU s2s / Joey':>18}"]
    for d, jd in zip(same_weights["s2s_decode"], same_weights["joeynmt_decode"]):
        label = f"b{d['batch_size']} {_search(d)} ({d['sentences']})"
        bleu = f"{d['bleu']:.2f} / {jd['bleu']:.2f}" if "bleu" in d and "bleu" in jd else ""
        lines.append(f"{label:<24}{d['sentences_per_s']:>12,.1f}{jd['sentences_per_s']:>13,.1f}"
                     f"{d['sentences_per_s'] / jd['sentences_per_s']:>9.2f}x"
                     f"{same_weights['identical_outputs'][d['name']]:>13.1%}{bleu:>18}")
    return "\n".join(lines)
