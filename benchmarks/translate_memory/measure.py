"""Peak RSS and wall time of ``s2s translate`` (greedy) for inputs of a few sizes, two code versions.

Each run is ``/usr/bin/time -v python -m s2s.cli translate ...`` with ``PYTHONPATH`` set to
the ``src/`` of the version measured; its "Maximum resident set size" is the peak RSS.
Torch runs on ``--threads`` threads (default 1: on a shared machine more threads than free
cores make the wall times meaningless; the peak RSS hardly depends on it).
The input is the Multi30k German training side (under ``S2S_MIRROR``, default ../shared/corpora),
repeated to the size asked for.

    python benchmarks/translate_memory/measure.py --model /tmp/tm/models/model.pt \\
        --version before=/tmp/tmem_old/src --version after=src --lines 10000 200000

Prints a Markdown table (and checks that every version writes the same output).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import itertools
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

CORPUS = Path(os.environ.get("S2S_MIRROR", "../shared/corpora").split()[0]) / "multi30k" / "train.de.gz"


def write_input(path: Path, lines: int, corpus: Path = CORPUS) -> None:
    """``lines`` lines of ``corpus``, repeated from its start as often as needed."""
    with gzip.open(corpus, "rt", encoding="utf-8") as handle:
        sentences = [line.rstrip("\n") for line in handle]
    with open(path, "w", encoding="utf-8") as out:
        out.writelines(line + "\n" for line in itertools.islice(itertools.cycle(sentences), lines))


def check_version(src: Path) -> None:
    """Fail unless ``PYTHONPATH=src`` imports s2s from ``src`` (a missing directory would silently
    fall back to the installed s2s)."""
    env = dict(os.environ, PYTHONPATH=str(Path(src).resolve()))
    found = subprocess.run([sys.executable, "-c", "import s2s; print(s2s.__file__)"], env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    if not Path(found).resolve().is_relative_to(Path(src).resolve()):
        raise SystemExit(f"PYTHONPATH={src} imports {found}, not the code of {src}")


def measure(src: Path, model: Path, source: Path, target: Path, extra: list[str], threads: int) -> dict:
    """Run one translation under ``/usr/bin/time -v``; its peak RSS (MiB), wall time (s), output sha256."""
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "s2s.cli", "translate", "-m", str(model),
               "--beam", "1", "--device", "cpu", "-i", str(source), "-o", str(target), *extra]
    env = dict(os.environ, PYTHONPATH=str(Path(src).resolve()), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    rss_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", done.stderr).group(1)
    seconds = sum(float(part) * 60 ** i for i, part in enumerate(reversed(wall.split(":"))))
    return {"rss_mib": rss_kib / 1024, "wall_s": seconds,
            "sha256": hashlib.sha256(target.read_bytes()).hexdigest()[:12]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--version", action="append", required=True, metavar="NAME=SRC",
                        help="a name and the src/ directory of the code to run (repeat)")
    parser.add_argument("--lines", type=int, nargs="+", default=[10_000, 200_000])
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each run")
    parser.add_argument("--extra", default="", help="more translate options, one string")
    args = parser.parse_args()
    versions = dict(item.split("=", 1) for item in args.version)
    for src in versions.values():
        check_version(Path(src))
    print("| lines | " + " | ".join(f"peak RSS {name} (MiB) | wall {name} (s)" for name in versions)
          + " | same output |")
    print("|---:|" + "---:|---:|" * len(versions) + ":---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for lines in args.lines:
            source = Path(tmp) / f"in{lines}.de"
            write_input(source, lines)
            runs = {name: measure(Path(src), args.model, source, Path(tmp) / f"out-{name}.en",
                                        args.extra.split(), args.threads)
                    for name, src in versions.items()}
            cells = " | ".join(f"{r['rss_mib']:.0f} | {r['wall_s']:.1f}" for r in runs.values())
            same = "yes" if len({r["sha256"] for r in runs.values()}) == 1 else "NO"
            print(f"| {lines:,} | {cells} | {same} |", flush=True)


if __name__ == "__main__":
    main()
