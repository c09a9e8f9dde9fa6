"""Is a difference between two systems real? Paired significance tests on sacreBLEU's statistics.

Two systems' hypotheses of one test set, line-aligned with the same references, are compared
on a sacreBLEU metric (BLEU, chrF, TER) by

- **paired bootstrap resampling** (Koehn 2004): ``resamples`` test sets drawn from the
  sentences with replacement, both systems scored on each; the 95% confidence interval of the
  difference (candidate − baseline) is the 2.5th–97.5th percentile of the resampled
  differences, and the p-value that of sacreBLEU's test (how often a resampled difference,
  centred on the resampled mean, is at least as large as the observed one);
- **paired approximate randomization** (Riezler and Maxwell 2005): ``trials`` times, each
  sentence's two hypotheses swapped between the systems with probability 1/2; the p-value is
  the share of trials (plus one) whose difference is at least the observed one.

Between groups of runs (the seeds of two experiments), :func:`welch_test` gives the difference
of the groups' mean scores, its 95% Welch–Satterthwaite t interval and the two-sided p-value,
the Student t distribution computed from the regularised incomplete beta function.

Scores come from sacreBLEU's own per-sentence sufficient statistics (the private
``_extract_corpus_statistics`` / ``_compute_score_from_stats`` that ``sacrebleu.significance``
uses), so a resampled score is exactly the corpus score of the resampled set. The random
draws come from ``numpy.random.default_rng(seed)``: the same seed gives the same figures.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from sacrebleu.metrics import BLEU, CHRF, TER
from sacrebleu.metrics.base import Metric

from s2s.errors import S2SError

METRICS = {"bleu": BLEU, "chrf": CHRF, "ter": TER}


@dataclass(frozen=True)
class PairedResult:
    """One metric's comparison of a candidate with a baseline (difference = candidate − baseline;
    for TER lower is better, so a negative difference is an improvement)."""

    metric: str
    baseline: float
    candidate: float
    difference: float
    ci_low: float            # 95% paired bootstrap interval of the difference
    ci_high: float
    p_bootstrap: float
    p_randomization: float
    resamples: int
    trials: int
    seed: int
    signature: str           # sacreBLEU's signature of the metric

    def to_dict(self) -> dict:
        return {"baseline": round(self.baseline, 2), "candidate": round(self.candidate, 2),
                "difference": round(self.difference, 2), "ci95": [round(self.ci_low, 2), round(self.ci_high, 2)],
                "p_bootstrap": round(self.p_bootstrap, 4), "p_randomization": round(self.p_randomization, 4),
                "resamples": self.resamples, "trials": self.trials, "seed": self.seed,
                "signature": self.signature}


def _statistics(metric: Metric, hypotheses: list[str], references: list[str]) -> np.ndarray:
    """(sentences, stats) sufficient statistics of each hypothesis."""
    return np.array(metric._extract_corpus_statistics(hypotheses, [references]), dtype=np.float64)


def _score(metric: Metric, totals: np.ndarray) -> float:
    """The corpus score of summed statistics (stats,)."""
    return float(metric._compute_score_from_stats(list(totals)).score)


def _scores(metric: Metric, totals: np.ndarray) -> np.ndarray:
    """(rows,) corpus scores of summed statistics (rows, stats)."""
    return np.array([_score(metric, row) for row in totals])


def paired_test(baseline: list[str], candidate: list[str], references: list[str], metric: str = "bleu",
                resamples: int = 1000, trials: int = 10000, seed: int = 12345) -> PairedResult:
    """Compare ``candidate`` with ``baseline`` on ``metric`` by paired bootstrap and approximate
    randomization (see the module's docstring)."""
    if not len(baseline) == len(candidate) == len(references):
        raise S2SError(f"{len(baseline)} baseline and {len(candidate)} candidate hypotheses for "
                       f"{len(references)} references; both systems must translate the same test set")
    if not references:
        raise S2SError("an empty test set: nothing to compare")
    if metric not in METRICS:
        raise S2SError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    scorer = METRICS[metric]()
    stats_a, stats_b = _statistics(scorer, baseline, references), _statistics(scorer, candidate, references)
    score_a, score_b = _score(scorer, stats_a.sum(0)), _score(scorer, stats_b.sum(0))
    observed = score_b - score_a
    rng = np.random.default_rng(seed)
    n = len(references)

    picks = rng.integers(0, n, size=(resamples, n))                             # (resamples, n)
    diffs = _scores(scorer, stats_b[picks].sum(1)) - _scores(scorer, stats_a[picks].sum(1))  # (resamples,)
    ci_low, ci_high = (float(x) for x in np.percentile(diffs, [2.5, 97.5]))
    centred = np.abs(diffs - diffs.mean())
    p_bootstrap = (np.count_nonzero(centred >= abs(observed) - 1e-9) + 1) / (resamples + 1)

    swap = rng.integers(0, 2, size=(trials, n)).astype(np.float64)             # (trials, n): 1 = swapped
    delta = stats_b - stats_a                                                   # (n, stats)
    shuffled_a = stats_a.sum(0) + swap @ delta                                  # (trials, stats)
    shuffled_b = stats_b.sum(0) - swap @ delta
    shuffled = np.abs(_scores(scorer, shuffled_b) - _scores(scorer, shuffled_a))
    p_randomization = (np.count_nonzero(shuffled >= abs(observed) - 1e-9) + 1) / (trials + 1)
    return PairedResult(metric=metric, baseline=score_a, candidate=score_b, difference=observed,
                        ci_low=ci_low, ci_high=ci_high, p_bootstrap=float(p_bootstrap),
                        p_randomization=float(p_randomization), resamples=resamples, trials=trials,
                        seed=seed, signature=str(scorer.get_signature()))


@dataclass(frozen=True)
class Spread:
    """The mean and sample standard deviation (n − 1 in the denominator; None for one run) of scores."""

    n: int
    mean: float
    sd: Optional[float]

    @classmethod
    def of(cls, scores: Sequence[float]) -> "Spread":
        if not scores:
            raise S2SError("no scores: a group needs at least one run")
        return cls(len(scores), statistics.fmean(scores), statistics.stdev(scores) if len(scores) > 1 else None)


@dataclass(frozen=True)
class WelchResult:
    """Difference of two groups' means (candidate − baseline), its 95% interval and p-value; the
    interval and p are None unless both groups have at least two runs."""

    baseline: Spread
    candidate: Spread
    difference: float
    ci_low: Optional[float]
    ci_high: Optional[float]
    p: Optional[float]
    df: Optional[float]


def welch_test(baseline: Sequence[float], candidate: Sequence[float]) -> WelchResult:
    """Welch's unequal-variance t test of ``candidate``'s mean score against ``baseline``'s."""
    a, b = Spread.of(baseline), Spread.of(candidate)
    difference = b.mean - a.mean
    if a.sd is None or b.sd is None:
        return WelchResult(a, b, difference, None, None, None, None)
    va, vb = a.sd ** 2 / a.n, b.sd ** 2 / b.n
    se = math.sqrt(va + vb)
    if se < 1e-9:  # every run of each group scored the same: no spread, so no t test
        return WelchResult(a, b, difference, None, None, None, None)
    df = (va + vb) ** 2 / (va ** 2 / (a.n - 1) + vb ** 2 / (b.n - 1))
    half = t_quantile(0.975, df) * se
    return WelchResult(a, b, difference, difference - half, difference + half, t_two_sided_p(difference / se, df), df)


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom: I_{df/(df+t²)}(df/2, 1/2)."""
    return _betainc(df / 2, 0.5, df / (df + t * t))


def t_quantile(q: float, df: float) -> float:
    """The ``q`` quantile (0.5 < q < 1) of Student's t with ``df`` degrees of freedom, by bisection."""
    target, low, high = 2 * (1 - q), 0.0, 1.0
    while t_two_sided_p(high, df) > target:
        high *= 2
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if t_two_sided_p(middle, df) > target else (low, middle)
    return (low + high) / 2


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b) (its continued fraction, Lentz's method)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1) / (a + b + 2):
        return front * _beta_fraction(a, b, x) / a
    return 1 - front * _beta_fraction(b, a, 1 - x) / b


def _beta_fraction(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a - 1 + 2 * m) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 1 + 2 * m))):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < 1e-15:
            break
    return h
