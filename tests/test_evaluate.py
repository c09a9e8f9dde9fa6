import pytest

from s2s.errors import S2SError
from s2s.evaluate import score


def test_scores_and_signatures():
    refs = ["A dog runs on the grass .", "Two cats sit on a red table ."]
    perfect = score(refs, refs)
    assert perfect["bleu"] == pytest.approx(100.0) and perfect["chrf"] == pytest.approx(100.0)
    assert perfect["ter"] == pytest.approx(0.0)
    assert "tok:13a" in perfect["signature"]["bleu"] and "case:mixed" in perfect["signature"]["bleu"]
    assert "case:lc" in perfect["signature"]["bleu_lc"]
    lower = score([r.lower() for r in refs], refs)
    assert lower["bleu"] < 100.0 and lower["bleu_lc"] == pytest.approx(100.0)


def test_misaligned_outputs_are_an_error():
    with pytest.raises(S2SError, match="line-aligned"):
        score(["one"], ["one", "two"])
