"""BLEU of s2s and Joey NMT over every recorded run of one setting (issue 6: the same BLEU at the same
number of updates).

At 1000 updates both models are far from converged, and one run's BLEU is a noisy measure: Joey NMT is
not deterministic on the CPU (its runs of one seed spread by about 0.8 greedy BLEU) and s2s's models of
different seeds differ by as much. This script reads the ``results/result-*.json`` files that ``run.py``
wrote, keeps those of one setting, counts each training run once, and compares the two systems' means.

    python benchmarks/peers/joeynmt/bleu_runs.py --steps 1000 --buckets-per-batch 4

A Joey run counts when its updates are ``--steps`` and its config (paths and seed aside) is that of
the newest such file; a run reused by a later command (``--reuse-joey``) counts once. An s2s run
counts when its training setting matches (``--s2s-init``, ``--s2s-batching``,
``--buckets-per-batch``, ``--accumulate``); s2s is deterministic, so each (seed, final loss) is one
model, scored by its newest file (the newest decoding code). One seed can have several s2s models:
changes to the training code that kept its arithmetic but not its float rounding gave new ones.

Each seed's means are compared, then the mean of those differences (every seed weighted alike,
however many runs it has), and the means over all runs with their standard errors.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEARCHES = ("greedy", "beam")
SYSTEMS = ("s2s", "joeynmt")
RESULTS = HERE / "results"


@dataclass(frozen=True)
class Run:
    """One training run's BLEU on test 2016 (batch 64) and final loss, and the file that recorded it."""

    system: str
    seed: int
    greedy: float
    beam: float
    loss: float  # cross-entropy, mean of the last 10 updates
    created: str
    file: str


@dataclass(frozen=True)
class Setting:
    """The training setting whose runs are compared: updates, and s2s's side of it (its initial
    weights, run.py's ``--s2s-batching``, ``train.buckets_per_batch`` and ``train.accumulate``)."""

    steps: int
    s2s_init: str  # pytorch or uniform (s2s's own draws of that model.init scheme), or joey (Joey's weights)
    s2s_batching: str
    buckets_per_batch: int
    accumulate: int

    def describe(self) -> str:
        return (f"--steps {self.steps} --s2s-init {self.s2s_init} --s2s-batching {self.s2s_batching} "
                f"--buckets-per-batch {self.buckets_per_batch} --accumulate {self.accumulate}")


def normalized_joey_config(text: str) -> str:
    """Joey's config with its comments dropped and its paths and seed blanked: the same for every
    run of one setting."""
    text = "\n".join(line for line in (re.sub(r"\s*#.*", "", line) for line in text.splitlines()) if line.strip())
    text = re.sub(r"random_seed: \d+", "random_seed: SEED", text)
    return re.sub(r"/\S+/(?=[^/\s]+\s)", "PATH/", text)


def s2s_initial_weights(result: dict) -> str:
    """Where a run's s2s started: its own draws of ``pytorch`` or ``uniform`` (``model.init``), or
    ``joey``, Joey's initial weights of the seed (``run.py --s2s-init joey``)."""
    start = result.get("s2s_init", "s2s")
    if start == "s2s":
        return result["s2s_params"]["model"].get("init", "pytorch")  # older runs: no model.init, PyTorch's
    return start  # joey, or uniform: run.py at ac550d6 drew that scheme itself, before model.init


def runs_of(result: dict, file: str, setting: Setting, joey_config: str) -> list[Run]:
    """The s2s and Joey runs one result file holds that belong to the setting."""
    if result.get("steps") != setting.steps:
        return []
    train = result["s2s_params"]["train"]
    found = []
    if "bleu" in (result.get("joeynmt") or {}) and normalized_joey_config(result["joey_config"]) == joey_config:
        joey = result["joeynmt"]
        found.append(Run("joeynmt", train["seed"], joey["bleu"]["greedy"], joey["bleu"]["beam"],
                         joey["train"]["mean_loss_last10"] + result["joey_target_entropy"],
                         result["created"], file))
    if (s2s_initial_weights(result) == setting.s2s_init
            and result.get("s2s_batching", "bucketed") == setting.s2s_batching
            and train.get("buckets_per_batch", 1) == setting.buckets_per_batch
            and train.get("accumulate", 1) == setting.accumulate and "bleu" in result["s2s"]):
        s2s = result["s2s"]
        found.append(Run("s2s", train["seed"], s2s["bleu"]["greedy"], s2s["bleu"]["beam"],
                         s2s["train"]["mean_loss_last10"], result["created"], file))
    return found


def distinct(runs: list[Run]) -> list[Run]:
    """Each training run once: Joey's by its figures, from the file that first recorded them (a reused
    run repeats them); s2s's by (seed, loss), from the newest file (its newest decoding)."""
    kept: dict[tuple, Run] = {}
    for run in sorted(runs, key=lambda r: r.created):
        if run.system == "s2s":
            kept[run.seed, round(run.loss, 6)] = run
        else:
            kept.setdefault((run.seed, run.greedy, run.beam, round(run.loss, 6)), run)
    return sorted(kept.values(), key=lambda r: (r.seed, r.created))


def mean_and_error(values: list[float]) -> tuple[float, float]:
    """Mean and its standard error (0 for a single value)."""
    if len(values) < 2:
        return values[0], 0.0
    return statistics.fmean(values), statistics.stdev(values) / len(values) ** 0.5


def count(runs: list[Run]) -> str:
    return f"{len(runs)} run{'s' * (len(runs) != 1)}"


@dataclass(frozen=True)
class SeedMeans:
    """One seed that both systems ran: each system's runs and mean BLEU by search, and s2s - Joey."""

    seed: int
    runs: dict[str, list[Run]]  # by system
    means: dict[tuple[str, str], float]  # (system, search) -> mean
    difference: dict[str, float]  # search -> s2s mean - Joey mean


@dataclass(frozen=True)
class Summary:
    """The statistics of a set of runs (each training run once, as :func:`distinct` keeps them)."""

    runs: list[Run]
    seeds: list[SeedMeans]  # the seeds both systems ran, in order
    seed_difference: dict[str, float] | None  # search -> mean over ``seeds`` of s2s - Joey; None without one
    means: dict[tuple[str, str], tuple[float, float]]  # (system, search) -> (mean, standard error) over all runs
    difference: dict[str, tuple[float, float]]  # search -> (s2s - Joey of the means, its standard error)

    def of(self, system: str) -> list[Run]:
        return [r for r in self.runs if r.system == system]


def summarize(runs: list[Run]) -> Summary:
    """Each seed's means and their differences, the mean of those differences (every seed weighted
    alike), and the means over all runs with their standard errors (that of the difference is the two
    errors added in quadrature)."""
    of = {system: [r for r in runs if r.system == system] for system in SYSTEMS}
    seeds = []
    for seed in sorted({r.seed for r in of["s2s"]} & {r.seed for r in of["joeynmt"]}):
        mine = {system: [r for r in of[system] if r.seed == seed] for system in SYSTEMS}
        mean = {(system, search): statistics.fmean(getattr(r, search) for r in mine[system])
                for system in SYSTEMS for search in SEARCHES}
        seeds.append(SeedMeans(seed, mine, mean, {s: mean["s2s", s] - mean["joeynmt", s] for s in SEARCHES}))
    seed_difference = ({s: statistics.fmean(m.difference[s] for m in seeds) for s in SEARCHES}
                       if seeds else None)
    means = {(system, search): mean_and_error([getattr(r, search) for r in of[system]])
             for system in SYSTEMS for search in SEARCHES}
    difference = {s: (means["s2s", s][0] - means["joeynmt", s][0],
                      (means["s2s", s][1] ** 2 + means["joeynmt", s][1] ** 2) ** 0.5) for s in SEARCHES}
    return Summary(runs, seeds, seed_difference, means, difference)


def report(runs: list[Run]) -> str:
    """Every run, each seed's means, and the means over runs and over seeds."""
    summary = summarize(runs)
    lines = [f"{'system':<9}{'seed':>6}{'greedy':>9}{'beam 5':>9}{'loss':>8}  file"]
    lines += [f"{r.system:<9}{r.seed:>6}{r.greedy:>9.2f}{r.beam:>9.2f}{r.loss:>8.3f}  {r.file}" for r in runs]
    lines.append("\nmeans per seed, greedy / beam 5:")
    for seed in summary.seeds:
        cells = [f"{system} {' / '.join(f'{seed.means[system, s]:.2f}' for s in SEARCHES)} "
                 f"({count(seed.runs[system])})" for system in SYSTEMS]
        lines.append(f"  seed {seed.seed}: {cells[0]}, {cells[1]}: s2s - Joey "
                     + " / ".join(f"{seed.difference[s]:+.2f}" for s in SEARCHES))
    if summary.seed_difference is not None:
        n = len(summary.seeds)
        lines.append(f"over the {n} seed{'s' * (n != 1)} both ran (each seed's means weighted alike): s2s - Joey "
                     + " / ".join(f"{summary.seed_difference[s]:+.2f}" for s in SEARCHES))
    else:
        lines.append("  (no seed run by both)")
    lines.append("over all runs (mean ± standard error):")
    for system in SYSTEMS:
        lines.append(f"  {system} ({count(summary.of(system))}): " + " / ".join(
            f"{summary.means[system, s][0]:.2f} ± {summary.means[system, s][1]:.2f}" for s in SEARCHES))
    lines.append("  s2s - Joey: " + " / ".join(
        f"{summary.difference[s][0]:+.2f} ± {summary.difference[s][1]:.2f}" for s in SEARCHES))
    return "\n".join(lines)


def load_results(files: list[Path]) -> dict[str, dict]:
    """Result files by name; stops on one that is not JSON."""
    results = {}
    for path in files:
        try:
            results[path.name] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as error:
            sys.exit(f"{path}: not a readable result file ({error}); pass files run.py wrote")
    return results


def runs_of_setting(results: dict[str, dict], setting: Setting) -> list[Run]:
    """Each training run of ``setting`` once, over result files by name; Joey's config is the newest
    file's of that many updates. Stops when either system has no run."""
    trained = [r for r in results.values() if r.get("steps") == setting.steps and "joey_config" in r]
    if not trained:
        sys.exit(f"no result of {setting.steps} training updates in {len(results)} files; check --steps")
    joey_config = normalized_joey_config(max(trained, key=lambda r: r["created"])["joey_config"])
    runs = distinct([run for name, result in results.items() for run in runs_of(result, name, setting, joey_config)])
    if not set(SYSTEMS) <= {r.system for r in runs}:
        sys.exit(f"no runs of both systems at {setting.describe()} in {len(results)} files; check the setting")
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000, help="training updates of the runs")
    parser.add_argument("--s2s-init", choices=["pytorch", "uniform", "joey"], default="uniform",
                        help="s2s's initial weights in the runs: its own draws of that model.init scheme, or "
                             "Joey's of the same seed (run.py --s2s-init joey)")
    parser.add_argument("--s2s-batching", choices=["bucketed", "joey"], default="bucketed",
                        help="s2s's batches in the runs: its own bucketed ones or Joey's (run.py --s2s-batching)")
    parser.add_argument("--buckets-per-batch", type=int, default=4,
                        help="s2s's train.buckets_per_batch (1 with --s2s-batching joey)")
    parser.add_argument("--accumulate", type=int, default=1, help="s2s's train.accumulate")
    parser.add_argument("results", nargs="*", type=Path, help="result files (default: results/result-*.json)")
    args = parser.parse_args()
    files = args.results or sorted(RESULTS.glob("result-*.json"))
    setting = Setting(args.steps, args.s2s_init, args.s2s_batching, args.buckets_per_batch, args.accumulate)
    print(report(runs_of_setting(load_results(files), setting)))


if __name__ == "__main__":
    main()
