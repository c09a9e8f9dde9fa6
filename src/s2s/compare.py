"""``s2s compare``: the workspace's evaluated outputs against those of another revision.

The evaluate stage writes ``outputs/<set>.hyp`` for valid and every test set, scored against
``data/raw/<corpus>/<set>.<tgt>``. For every set both sides have, this reads the two sides'
hypotheses and references (the other revision's through DVC: a git revision or a ``dvc exp``
name, its files from the cache or the remote, nothing checked out) and compares them with the
paired tests of :mod:`s2s.significance` on BLEU, chrF and TER. References that differ between
the sides are an error: a comparison is only meaningful on the same test data.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import yaml

from s2s.config import Params, params_from_dict
from s2s.errors import S2SError
from s2s.significance import METRICS, PairedResult, WelchResult, paired_test, welch_test

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SetComparison:
    """The paired tests of one set, per metric."""

    name: str
    sentences: int
    results: dict[str, PairedResult]


class Unavailable(S2SError):
    """A file the revision tracks with DVC whose content is in neither the cache nor the remote."""


@dataclass(frozen=True)
class Side:
    """One side of a comparison: how to read a project file (relative path -> text), and its name."""

    name: str
    read: Callable[[str], Optional[str]]  # None when the file is absent on this side


def workspace(root: Path) -> Side:
    def read(path: str) -> Optional[str]:
        target = root / path
        return target.read_text(encoding="utf-8") if target.is_file() else None
    return Side("workspace", read)


def revision(root: Path, rev: str) -> Side:
    """The project at git revision or experiment ``rev``, read through DVC (cache, then remote)."""
    from dvc.api import DVCFileSystem
    from dvc.exceptions import DvcException
    from dvc_data.index import DataIndexError

    try:
        fs = DVCFileSystem(str(root), rev=rev)
        fs.ls(".")  # resolves the revision (isfile would answer False for an unknown one)
    except DvcException as err:
        raise S2SError(f"{rev}: not a revision or experiment of the project at {root} ({err})") from None

    def read(path: str) -> Optional[str]:
        unavailable = f"{rev}:{path}: tracked but not in the DVC cache or remote"
        fix = "`dvc pull` it or run the experiment again"
        try:
            exists = fs.isfile(path)
            if not exists:  # absent, or inside a tracked folder whose listing is not in the cache
                fs.ls(path.rpartition("/")[0] or ".")
                return None
        except FileNotFoundError:
            return None
        except (DvcException, DataIndexError) as err:
            raise Unavailable(f"{unavailable} ({type(err).__name__}: {err}); {fix}") from None
        try:
            return fs.read_text(path, encoding="utf-8")
        except (DvcException, DataIndexError, FileNotFoundError) as err:
            raise Unavailable(f"{unavailable} ({type(err).__name__}: {err}); {fix}") from None
    return Side(rev, read)


def _out_hash(out: dict) -> Optional[str]:
    return out.get("md5") or out.get("etag") or out.get("checksum")


def lock_hashes(side: Side) -> dict[str, Optional[str]]:
    """Every stage output's hash that ``side``'s ``dvc.lock`` records, by path."""
    lock = yaml.safe_load(side.read("dvc.lock") or "{}") or {}
    return {out.get("path"): _out_hash(out)
            for stage in (lock.get("stages") or {}).values() for out in stage.get("outs") or []}


def tracked_hash(side: Side, path: str, locked: dict[str, Optional[str]]) -> Optional[str]:
    """The hash DVC records for the output ``path`` on ``side``: in ``locked`` (its
    :func:`lock_hashes`) or in a ``.dvc`` file; None when DVC tracks no output of that path."""
    if path in locked:
        return locked[path]
    name = path.rpartition("/")[2]
    try:
        dvc_file = side.read(f"{path}.dvc")
    except Unavailable:  # inside a tracked folder: no .dvc file there
        return None
    for out in (yaml.safe_load(dvc_file or "{}") or {}).get("outs") or []:
        if out.get("path") == name:
            return _out_hash(out)
    return None


def _params(side: Side) -> Params:
    text = side.read("params.yaml")
    if text is None:
        raise S2SError(f"{side.name}: no params.yaml; is this an s2s project?")
    return params_from_dict(yaml.safe_load(text), f"{side.name}:params.yaml")


def _lines(text: str) -> list[str]:
    """The lines of a text file as the evaluate stage reads them: split at newlines only."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def _set_files(params: Params, split: str) -> tuple[str, str]:
    return f"outputs/{split}.hyp", f"data/raw/{params.data.corpus}/{split}.{params.data.tgt}"


@dataclass(frozen=True)
class SetTexts:
    """One set's hypotheses on every side (side name -> lines) and its references, the same on all."""

    hypotheses: dict[str, list[str]]
    references: list[str]


def _same_tracked_data(a: Side, b: Side, path: str, locked: dict[str, dict[str, Optional[str]]]) -> bool:
    """Whether DVC records the same hash on both sides for ``path`` or the nearest tracked folder
    above it; ``locked``: each side's :func:`lock_hashes`, by side name, filled in as needed."""
    for side in (a, b):
        if side.name not in locked:
            locked[side.name] = lock_hashes(side)
    parts = path.split("/")
    for end in range(len(parts), 0, -1):
        prefix = "/".join(parts[:end])
        found = tracked_hash(a, prefix, locked[a.name])
        if found is not None:
            return found == tracked_hash(b, prefix, locked[b.name])
    return False


def read_sets(sides: list[Side]) -> dict[str, SetTexts]:
    """Every set all ``sides`` evaluate (the first side's order), with each side's hypotheses.

    A side whose references are tracked by DVC but not in its cache (a fresh clone's ``main``)
    takes another side's when DVC records the same hash for their data on both; references
    that differ are an error: a comparison is only meaningful on the same test data.
    """
    names = [side.name for side in sides]
    if len(set(names)) < len(names):
        raise S2SError(f"a revision is named twice among {', '.join(names)}; name each once")
    params = {side.name: _params(side) for side in sides}
    sets = {name: ["valid", *p.data.test_sets] for name, p in params.items()}
    common = [s for s in sets[names[0]] if all(s in sets[name] for name in names)]
    for name, listed in sets.items():
        for missing in [s for s in listed if s not in common]:
            log.info("%s: evaluated by %s but not by every side; not compared", missing, name)
    if not common:
        raise S2SError(f"{' and '.join(names)} evaluate no set in common")
    by_name = {side.name: side for side in sides}
    locked: dict[str, dict[str, Optional[str]]] = {}  # each side's dvc.lock hashes, read once when needed
    texts = {}
    for split in common:
        hypotheses, references, unavailable = {}, {}, {}
        for side in sides:
            hyp_path, ref_path = _set_files(params[side.name], split)
            hyps = side.read(hyp_path)
            try:
                refs = side.read(ref_path)
            except Unavailable as err:
                unavailable[side.name], refs = err, None
            if hyps is None or (refs is None and side.name not in unavailable):
                raise S2SError(f"{side.name}: {hyp_path if hyps is None else ref_path} not found; run `dvc repro` "
                               f"(or `dvc pull`) there first")
            hypotheses[side.name] = _lines(hyps)
            if refs is not None:
                references[side.name] = _lines(refs)
        for name, err in unavailable.items():
            path = _set_files(params[name], split)[1]
            donor = next((other for other in references if _set_files(params[other], split)[1] == path
                          and _same_tracked_data(by_name[name], by_name[other], path, locked)), None)
            if donor is None:
                raise err
            log.info("%s: %s's references are not in the DVC cache; DVC records the same data as %s's, used instead",
                     split, name, donor)
            references[name] = references[donor]
        first = names[0]
        for name in names[1:]:
            if references[name] != references[first]:
                digest = {n: hashlib.sha256("\n".join(references[n]).encode()).hexdigest()[:12] for n in (first, name)}
                raise S2SError(f"{split}: the references differ between {first} ({len(references[first])} lines, "
                               f"sha256 {digest[first]}…) and {name} ({len(references[name])} lines, {digest[name]}…); "
                               "compare experiments on the same test data")
        texts[split] = SetTexts(hypotheses, references[first])
    return texts


def _paired(texts: dict[str, SetTexts], baseline: str, candidate: str, resamples: int, trials: int,
            seed: int) -> list[SetComparison]:
    return [SetComparison(split, len(t.references),
                          {metric: paired_test(t.hypotheses[baseline], t.hypotheses[candidate], t.references, metric,
                                               resamples, trials, seed) for metric in METRICS})
            for split, t in texts.items()]


def compare_sides(baseline: Side, candidate: Side, resamples: int = 1000, trials: int = 10000,
                  seed: int = 12345) -> list[SetComparison]:
    """Every set evaluated on both sides, compared (``candidate`` against ``baseline``)."""
    return _paired(read_sets([baseline, candidate]), baseline.name, candidate.name, resamples, trials, seed)


@dataclass(frozen=True)
class GroupRow:
    """One set and metric over the runs of both groups."""

    name: str
    metric: str
    result: WelchResult


@dataclass(frozen=True)
class GroupComparison:
    """Several runs per side: each side's mean ± sd and the difference of the means, per set and
    metric, and the paired tests of each side's best run (by valid BLEU)."""

    baselines: list[str]
    candidates: list[str]
    rows: list[GroupRow]
    best_baseline: str
    best_candidate: str
    paired: list[SetComparison]


def _corpus_score(metric: str, hypotheses: list[str], references: list[str]) -> float:
    return float(METRICS[metric]().corpus_score(hypotheses, [references]).score)


def compare_groups(baselines: list[Side], candidates: list[Side], resamples: int = 1000, trials: int = 10000,
                   seed: int = 12345) -> GroupComparison:
    """The runs of ``candidates`` against those of ``baselines`` (e.g. the seeds of two experiments)."""
    texts = read_sets([*baselines, *candidates])
    scores = {split: {metric: {name: _corpus_score(metric, hyps, t.references) for name, hyps in t.hypotheses.items()}
                      for metric in METRICS} for split, t in texts.items()}
    rows = [GroupRow(split, metric, welch_test([by_name[s.name] for s in baselines],
                                               [by_name[s.name] for s in candidates]))
            for split, by_metric in scores.items() for metric, by_name in by_metric.items()]
    chooser = scores["valid"]["bleu"] if "valid" in scores else next(iter(scores.values()))["bleu"]

    def best(sides: list[Side]) -> str:  # the first of equals, so the choice is the same every run
        return max(sides, key=lambda side: chooser[side.name]).name

    best_baseline, best_candidate = best(baselines), best(candidates)
    return GroupComparison([s.name for s in baselines], [s.name for s in candidates], rows, best_baseline,
                           best_candidate, _paired(texts, best_baseline, best_candidate, resamples, trials, seed))


def to_json(comparisons: list[SetComparison], baseline: str, candidate: str) -> dict:
    return {"baseline": baseline, "candidate": candidate,
            "sets": {c.name: {"sentences": c.sentences, **{m: r.to_dict() for m, r in c.results.items()}}
                     for c in comparisons}}


def _render(header: list[str], rows: list[list[str]], markdown: bool) -> list[str]:
    """The lines of a table: Markdown (the first two columns left-aligned, the interval column
    left, the figures right), or plain text in aligned columns."""
    if markdown:
        align = ["---" if i < 2 or cell.startswith("95%") else "---:" for i, cell in enumerate(header)]
        return ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|",
                *("| " + " | ".join(row) + " |" for row in rows)]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return ["  ".join(cell.ljust(width) if i < 2 else cell.rjust(width)
                      for i, (cell, width) in enumerate(zip(row, widths))).rstrip() for row in [header, *rows]]


def table(comparisons: list[SetComparison], baseline: str, candidate: str, markdown: bool = False) -> str:
    """Per set and metric the two scores, the difference, its 95% interval and both p-values, as
    aligned text or a Markdown table; the tests' settings and sacreBLEU's signatures below it."""
    header = ["set", "metric", baseline, candidate, "difference", "95% interval", "p (bootstrap)",
              "p (randomization)"]
    rows = [[c.name, metric + (" (lower is better)" if metric == "ter" else ""), f"{r.baseline:.2f}",
             f"{r.candidate:.2f}", f"{r.difference:+.2f}", f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}]",
             f"{r.p_bootstrap:.4f}", f"{r.p_randomization:.4f}"]
            for c in comparisons for metric, r in c.results.items()]
    lines = _render(header, rows, markdown)
    first = comparisons[0].results
    settings = next(iter(first.values()))
    lines += ["", f"Paired bootstrap: {settings.resamples} resamples; approximate randomization: "
                  f"{settings.trials} trials; seed {settings.seed}. sacreBLEU: "
                  + "; ".join(f"`{r.signature}`" if markdown else r.signature for r in first.values())]
    return "\n".join(lines) + "\n"


def _spread(spread) -> str:
    return f"{spread.mean:.2f}" + (f" ± {spread.sd:.2f}" if spread.sd is not None else "") + f" (n={spread.n})"


def group_table(report: GroupComparison, markdown: bool = False) -> str:
    """Each side's mean ± sd per set and metric, the difference of the means with its 95% Welch
    interval and p-value (when both sides have two runs or more), then :func:`table` of the
    paired tests of each side's best run."""
    header = ["set", "metric", "baseline mean ± sd", "candidate mean ± sd", "difference", "95% interval (Welch)",
              "p (Welch)"]
    rows = []
    for row in report.rows:
        r = row.result
        interval = "—" if r.ci_low is None else f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}]"
        rows.append([row.name, row.metric + (" (lower is better)" if row.metric == "ter" else ""),
                     _spread(r.baseline), _spread(r.candidate), f"{r.difference:+.2f}", interval,
                     "—" if r.p is None else f"{r.p:.4f}"])
    lines = _render(header, rows, markdown)
    lines += ["", f"Baseline: {', '.join(report.baselines)}; candidate: {', '.join(report.candidates)}. Sample sd "
                  "(n − 1); the interval and p need two runs or more per side.", "",
              f"Each side's best run by valid BLEU, paired: {report.best_baseline} (baseline) against "
              f"{report.best_candidate} (candidate); their valid rows are where they were chosen, so "
              "favour them", ""]
    return "\n".join(lines) + "\n" + table(report.paired, report.best_baseline, report.best_candidate, markdown)


def group_to_json(report: GroupComparison) -> dict:
    def spread(s) -> dict:
        return {"n": s.n, "mean": round(s.mean, 2), "sd": None if s.sd is None else round(s.sd, 2)}

    groups: dict = {}
    for row in report.rows:
        r = row.result
        groups.setdefault(row.name, {})[row.metric] = {
            "baseline": spread(r.baseline), "candidate": spread(r.candidate), "difference": round(r.difference, 2),
            "ci95_welch": None if r.ci_low is None else [round(r.ci_low, 2), round(r.ci_high, 2)],
            "p_welch": None if r.p is None else round(r.p, 4)}
    return {"baselines": report.baselines, "candidates": report.candidates, "groups": groups,
            "best": to_json(report.paired, report.best_baseline, report.best_candidate)}
