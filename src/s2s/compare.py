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
from s2s.significance import METRICS, PairedResult, paired_test

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SetComparison:
    """The paired tests of one set, per metric."""

    name: str
    sentences: int
    results: dict[str, PairedResult]


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

    try:
        fs = DVCFileSystem(str(root), rev=rev)
        fs.ls(".")  # resolves the revision (isfile would answer False for an unknown one)
    except DvcException as err:
        raise S2SError(f"--against {rev}: not a revision or experiment of the project at {root} ({err})") from None

    def read(path: str) -> Optional[str]:
        if not fs.isfile(path):
            return None
        try:
            return fs.read_text(path, encoding="utf-8")
        except (DvcException, FileNotFoundError) as err:
            raise S2SError(f"{rev}:{path}: tracked but not in the DVC cache or remote ({err}); `dvc pull` it "
                           "or run the experiment again") from None
    return Side(rev, read)


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


def compare_sides(baseline: Side, candidate: Side, resamples: int = 1000, trials: int = 10000,
                  seed: int = 12345) -> list[SetComparison]:
    """Every set evaluated on both sides, compared (``candidate`` against ``baseline``)."""
    sides = {side.name: (side, _params(side)) for side in (baseline, candidate)}
    sets = {name: ["valid", *params.data.test_sets] for name, (_, params) in sides.items()}
    common = [s for s in sets[candidate.name] if s in sets[baseline.name]]
    for name, names in sets.items():
        for missing in [s for s in names if s not in common]:
            log.info("%s: only %s evaluates %s; not compared", missing, name, missing)
    comparisons = []
    for split in common:
        texts = {}
        for name, (side, params) in sides.items():
            hyp_path, ref_path = _set_files(params, split)
            hyps, refs = side.read(hyp_path), side.read(ref_path)
            if hyps is None or refs is None:
                raise S2SError(f"{name}: {hyp_path if hyps is None else ref_path} not found; run `dvc repro` "
                               f"(or `dvc pull`) there first")
            texts[name] = (_lines(hyps), _lines(refs))
        (hyps_a, refs_a), (hyps_b, refs_b) = texts[baseline.name], texts[candidate.name]
        if refs_a != refs_b:
            digest = {name: hashlib.sha256("\n".join(refs).encode()).hexdigest()[:12]
                      for name, (_, refs) in texts.items()}
            raise S2SError(f"{split}: the references differ between {baseline.name} ({len(refs_a)} lines, sha256 "
                           f"{digest[baseline.name]}…) and {candidate.name} ({len(refs_b)} lines, "
                           f"{digest[candidate.name]}…); compare experiments on the same test data")
        results = {metric: paired_test(hyps_a, hyps_b, refs_a, metric, resamples, trials, seed)
                   for metric in METRICS}
        comparisons.append(SetComparison(split, len(refs_a), results))
    if not comparisons:
        raise S2SError(f"{baseline.name} and {candidate.name} evaluate no set in common")
    return comparisons


def to_json(comparisons: list[SetComparison], baseline: str, candidate: str) -> dict:
    return {"baseline": baseline, "candidate": candidate,
            "sets": {c.name: {"sentences": c.sentences, **{m: r.to_dict() for m, r in c.results.items()}}
                     for c in comparisons}}


def table(comparisons: list[SetComparison], baseline: str, candidate: str, markdown: bool = False) -> str:
    """Per set and metric the two scores, the difference, its 95% interval and both p-values, as
    aligned text or a Markdown table; the tests' settings and sacreBLEU's signatures below it."""
    header = ["set", "metric", baseline, candidate, "difference", "95% interval", "p (bootstrap)",
              "p (randomization)"]
    rows = [[c.name, metric + (" (lower is better)" if metric == "ter" else ""), f"{r.baseline:.2f}",
             f"{r.candidate:.2f}", f"{r.difference:+.2f}", f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}]",
             f"{r.p_bootstrap:.4f}", f"{r.p_randomization:.4f}"]
            for c in comparisons for metric, r in c.results.items()]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|---|---|---:|---:|---:|---|---:|---:|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    else:
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(width) if i < 2 else cell.rjust(width)
                           for i, (cell, width) in enumerate(zip(row, widths))).rstrip() for row in [header, *rows]]
    first = comparisons[0].results
    settings = next(iter(first.values()))
    lines += ["", f"Paired bootstrap: {settings.resamples} resamples; approximate randomization: "
                  f"{settings.trials} trials; seed {settings.seed}. sacreBLEU: "
                  + "; ".join(f"`{r.signature}`" if markdown else r.signature for r in first.values())]
    return "\n".join(lines) + "\n"
