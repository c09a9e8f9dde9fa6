import numpy as np
import pytest
from sacrebleu.metrics import BLEU, CHRF, TER

from s2s.errors import S2SError
from s2s.significance import METRICS, _score, _statistics, paired_test, t_quantile, t_two_sided_p, welch_test

WORDS = ("a dog runs on the grass while two men in red shirts watch from a bench near the river "
         "and children play with a ball under the old tree").split()


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(6, 14))) for _ in range(n)]


def damaged(lines: list[str], words_changed: int, seed: int) -> list[str]:
    """Each line with ``words_changed`` of its words replaced by a word of no reference."""
    rng = np.random.default_rng(seed)
    out = []
    for line in lines:
        words = line.split()
        for i in rng.choice(len(words), size=min(words_changed, len(words)), replace=False):
            words[i] = "zebra"
        out.append(" ".join(words))
    return out


REFS = sentences(150)


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_a_system_compared_with_itself_differs_by_nothing_with_p_1(metric):
    system = damaged(REFS, 2, seed=1)
    result = paired_test(system, system, REFS, metric, resamples=200, trials=500)
    assert result.difference == 0 and result.ci_low == 0 and result.ci_high == 0
    assert result.p_bootstrap == 1 and result.p_randomization == 1


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_a_clearly_better_system_is_significant(metric):
    worse, better = damaged(REFS, 5, seed=1), damaged(REFS, 1, seed=2)
    result = paired_test(worse, better, REFS, metric, resamples=300, trials=1000)
    improvement = -result.difference if metric == "ter" else result.difference  # TER: lower is better
    assert improvement > 5
    assert result.p_bootstrap < 0.05 and result.p_randomization < 0.05
    assert result.ci_low <= result.difference <= result.ci_high
    assert (result.ci_low > 0) if metric != "ter" else (result.ci_high < 0)


def test_two_runs_give_the_same_figures_and_the_seed_is_what_varies():
    a, b = damaged(REFS, 3, seed=1), damaged(REFS, 2, seed=2)
    first, again = paired_test(a, b, REFS, resamples=200, trials=500), paired_test(a, b, REFS, resamples=200,
                                                                                  trials=500)
    assert first == again and first.seed == 12345
    other = paired_test(a, b, REFS, resamples=200, trials=500, seed=7)
    assert other.difference == first.difference and (other.ci_low, other.ci_high) != (first.ci_low, first.ci_high)


@pytest.mark.parametrize("metric, scorer", [("bleu", BLEU), ("chrf", CHRF), ("ter", TER)])
def test_scores_from_the_statistics_are_sacrebleus_corpus_scores(metric, scorer):
    hyps = damaged(REFS, 2, seed=3)
    stats = _statistics(scorer(), hyps, REFS)
    assert stats.shape[0] == len(REFS)
    assert _score(scorer(), stats.sum(0)) == pytest.approx(scorer().corpus_score(hyps, [REFS]).score, abs=1e-9)
    assert paired_test(hyps, REFS, REFS, metric, resamples=10, trials=10).baseline == pytest.approx(
        scorer().corpus_score(hyps, [REFS]).score, abs=1e-9)


def test_mismatched_test_sets_are_a_clear_error():
    with pytest.raises(S2SError, match="149 baseline and 150 candidate hypotheses for 150 references"):
        paired_test(REFS[:-1], REFS, REFS)
    with pytest.raises(S2SError, match="unknown metric 'meteor'"):
        paired_test(REFS, REFS, REFS, "meteor")


@pytest.mark.parametrize("df, quantile", [(1, 12.7062), (2, 4.3027), (4, 2.7764), (30, 2.0423), (1e6, 1.9600)])
def test_student_t_quantiles_are_the_tables(df, quantile):
    assert t_quantile(0.975, df) == pytest.approx(quantile, abs=1e-4)
    assert t_two_sided_p(quantile, df) == pytest.approx(0.05, abs=1e-4)


def test_welch_test_of_two_groups_of_runs():
    result = welch_test([30.1, 30.5, 29.8], [31.0, 31.4, 30.9])
    assert result.baseline.mean == pytest.approx(30.1333, abs=1e-4) and result.baseline.sd == pytest.approx(0.3512, abs=1e-4)
    assert result.difference == pytest.approx(0.9667, abs=1e-4)
    assert result.df == pytest.approx(3.717, abs=1e-3)  # Welch–Satterthwaite
    half = t_quantile(0.975, result.df) * (0.3512 ** 2 / 3 + 0.2646 ** 2 / 3) ** 0.5
    assert (result.ci_low, result.ci_high) == pytest.approx((0.9667 - half, 0.9667 + half), abs=1e-3)
    assert result.p == pytest.approx(0.0217, abs=1e-3)
    same = welch_test([30.0, 31.0], [30.0, 31.0])
    assert same.difference == 0 and same.p == pytest.approx(1.0)
    flat = welch_test([30.1] * 3, [30.1] * 3)  # no spread on either side: no t test, not p = 0
    assert flat.baseline.sd == 0 and flat.difference == 0 and flat.ci_low is None and flat.p is None
    single = welch_test([30.0, 31.0, 32.0], [33.0])  # one run: no spread, so no interval
    assert single.difference == 2.0 and single.ci_low is None and single.p is None and single.candidate.sd is None
    with pytest.raises(S2SError, match="at least one run"):
        welch_test([], [1.0])
