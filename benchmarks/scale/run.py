"""The scale benchmark: the data stages and a fixed number of training steps at N pairs.

For each N, a project under the work directory gets a corpus of N pairs made by
``corpus.py`` (valid and test are Multi30k's own, from the mirror), this checkout's stage
scripts and the committed ``params.yaml`` with the custom corpus. Each data stage runs as
``python stages/<name>.py`` under ``/usr/bin/time -v`` (wall time, peak RSS); training is
``s2s bench --steps S`` on the tensorized data (steady-state target tokens/s after warm-up;
peak RSS of the process, which loads the training split and builds its batches). The figures
go to ``<work>/scale-<label>.json`` and a Markdown table with the growth exponent of time and
memory between consecutive sizes (``log(t2/t1) / log(n2/n1)``: 1 is linear).

    S2S_MIRROR=../shared/corpora python benchmarks/scale/run.py --sizes 29000 290000 2900000 \\
        --work /tmp/scale --label before [--steps 30] [--stages download clean spm tensorize]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import write_corpus  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DATA_STAGES = ("download", "clean", "spm", "tensorize")


def make_project(root: Path, corpus: dict[str, Path], mirror: Path) -> None:
    """A project at ``root``: this checkout's stages and code, the committed params on ``corpus``."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    shutil.copytree(REPO / "stages", root / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "src").symlink_to(REPO / "src", target_is_directory=True)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    multi30k = mirror / "multi30k"
    params["data"].update(corpus="custom", files={
        "train": {"src": str(corpus["de"]), "tgt": str(corpus["en"])},
        "valid": {"src": str(multi30k / "val.de.gz"), "tgt": str(multi30k / "val.en.gz")},
        "test_2016_flickr": {"src": str(multi30k / "test_2016_flickr.de.gz"),
                             "tgt": str(multi30k / "test_2016_flickr.en.gz")}})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def timed(command: list[str], cwd: Path, log: Path) -> dict:
    """Run ``command`` under ``/usr/bin/time -v``; its wall seconds and peak RSS (MiB). Fails loudly."""
    with open(log, "w") as out:
        proc = subprocess.run(["/usr/bin/time", "-v", *command], cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONPATH": str(REPO / "src"),  # `-m s2s.cli`: this checkout's
                                   "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
    text = log.read_text(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed in {cwd} (exit {proc.returncode}); see {log}:\n{text[-2000:]}")
    rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", text)
    hours, minutes, seconds = (float(g) if g else 0.0 for g in wall.groups())
    return {"seconds": round(hours * 3600 + minutes * 60 + seconds, 2), "peak_rss_mib": round(rss_kib / 1024, 1)}


def measure(n: int, work: Path, mirror: Path, stages: list[str], steps: int) -> dict:
    """The figures of one size."""
    corpus_dir = work / f"corpus-{n}"
    started = time.perf_counter()
    if not (corpus_dir / "train.en").exists():
        write_corpus(n, corpus_dir, mirror)
    result = {"pairs": n, "generate_seconds": round(time.perf_counter() - started, 1), "stages": {}}
    project = work / f"project-{n}"
    make_project(project, {lang: corpus_dir / f"train.{lang}" for lang in ("de", "en")}, mirror)
    for name in stages:
        result["stages"][name] = timed([sys.executable, f"stages/{name}.py"], project, project / f"{name}.log")
        print(f"N={n:,} {name}: {result['stages'][name]}", flush=True)
    if steps:
        bench_json = project / "bench.json"
        figures = timed([sys.executable, "-m", "s2s.cli", "bench", "--root", ".", "--params", "params.yaml",
                         "--steps", str(steps), "--out", str(bench_json)], project, project / "bench.log")
        bench = json.loads(bench_json.read_text())
        figures["train_tgt_tokens_per_s"] = bench["train_tgt_tokens_per_s"]
        result["train"] = figures
        print(f"N={n:,} train ({steps} steps): {figures}", flush=True)
    return result


def exponent(a: float, b: float, n_a: int, n_b: int) -> float:
    return round(math.log(b / a) / math.log(n_b / n_a), 2) if a > 0 and b > 0 else float("nan")


def table(results: list[dict]) -> str:
    """Markdown: per stage and size, seconds and peak RSS, and the growth exponents between sizes."""
    pairs = list(zip(results, results[1:]))
    header = ["stage"] + [f"N={r['pairs']:,}: s / MiB" for r in results] + \
        [f"exponent {a['pairs']:,}→{b['pairs']:,}: time / RSS" for a, b in pairs]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    names = list(results[0]["stages"]) + (["train"] if "train" in results[0] else [])
    for name in names:
        cells = [r["stages"][name] if name in r["stages"] else r[name] for r in results]
        figures = [f"{c['seconds']} / {c['peak_rss_mib']}" for c in cells]
        growth = [f"{exponent(a['seconds'], b['seconds'], ra['pairs'], rb['pairs'])} / "
                  f"{exponent(a['peak_rss_mib'], b['peak_rss_mib'], ra['pairs'], rb['pairs'])}"
                  for (a, b), (ra, rb) in zip(zip(cells, cells[1:]), pairs)]
        rows.append("| " + " | ".join([name, *figures, *growth]) + " |")
    if "train" in results[0]:
        speeds = [f"{r['train']['train_tgt_tokens_per_s']:.0f}" for r in results]
        rows.append("| " + " | ".join(["train tgt tokens/s", *speeds, *([""] * len(pairs))]) + " |")
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[29_000, 290_000, 2_900_000])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--label", default="run")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps of s2s bench (0 = none)")
    parser.add_argument("--stages", nargs="+", default=list(DATA_STAGES), choices=DATA_STAGES)
    parser.add_argument("--mirror", type=Path,
                        default=Path(os.environ.get("S2S_MIRROR", "../shared/corpora").split()[0]))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results = []
    for n in args.sizes:
        results.append(measure(n, args.work, args.mirror.resolve(), args.stages, args.steps))
        (args.work / f"scale-{args.label}.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = table(results)
    (args.work / f"scale-{args.label}.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
