import copy
import math

import numpy as np
import pytest
import torch

from conftest import DECODERS
from s2s.config import ModelConfig
from s2s.errors import S2SError
from s2s.model import Seq2Seq
from s2s.model.ensemble import Ensemble, mean_of_probabilities
from s2s.search import LengthLimit, beam_search, greedy
from s2s.subword import BOS_ID, EOS_ID
from s2s.tensors import pad


def tiny_model(seed: int, decoder: str = "bahdanau", cell: str = "gru", vocab: int = 30) -> Seq2Seq:
    torch.manual_seed(seed)
    return Seq2Seq(ModelConfig(cell=cell, **DECODERS[decoder], emb=16, hidden=24, dropout=0.0), vocab, vocab).eval()


def batch():
    srcs = [np.array(s) for s in ([5, 6, 7, 8, 9], [10, 11], [12, 13, 14], [15, 16, 17, 18], [19])]
    return pad(srcs, suffix=EOS_ID), torch.tensor([len(s) + 1 for s in srcs])


def test_mean_of_probabilities_is_the_log_of_the_mean_probability_and_exact_for_equal_members():
    torch.manual_seed(0)
    a, b = torch.log_softmax(torch.randn(4, 9), -1), torch.log_softmax(torch.randn(4, 9), -1)
    mixed = mean_of_probabilities([a, b])
    assert torch.allclose(mixed.exp(), (a.exp() + b.exp()) / 2, atol=1e-7)
    assert torch.allclose(mixed.exp().sum(-1), torch.ones(4), atol=1e-6)
    assert torch.equal(mean_of_probabilities([a, a, a]), a)
    minus_inf = a.clone()
    minus_inf[:, 0] = float("-inf")
    assert mean_of_probabilities([minus_inf, minus_inf])[:, 0].eq(float("-inf")).all()
    one_sure_one_not = mean_of_probabilities([minus_inf, a])  # one member rules a token out: half the other's
    assert torch.allclose(one_sure_one_not[:, 0], a[:, 0] - math.log(2), atol=1e-6)


@pytest.mark.parametrize("decoder", DECODERS)
def test_an_ensembles_step_distribution_is_the_mean_of_its_members(decoder):
    members = [tiny_model(seed, decoder) for seed in (1, 2, 3)]
    ensemble = Ensemble(members).eval()
    src, lens = batch()
    tokens = torch.full((src.size(0),), BOS_ID)
    with torch.inference_mode():
        memory, state = ensemble.start(ensemble.encode(src, lens))
        singles = [m.start(m.encode(src, lens)) for m in members]
        for _ in range(4):  # a few steps, feeding the ensemble's own argmax back
            log_probs, state, weights = ensemble.step_log_probs(tokens, state, memory)
            steps = [m.step_log_probs(tokens, s, mem) for m, (mem, s) in zip(members, singles)]
            expected = torch.stack([lp.exp() for lp, _, _ in steps]).mean(0)
            assert torch.allclose(log_probs.exp(), expected, atol=1e-6)
            if decoder == "none":
                assert weights is None
            else:
                assert torch.allclose(weights, torch.stack([w for _, _, w in steps]).mean(0), atol=1e-6)
            singles = [(mem, s) for (mem, _), (_, s, _) in zip(singles, steps)]
            tokens = log_probs.argmax(-1)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("decoder", DECODERS)
def test_an_ensemble_of_a_model_with_itself_decodes_as_the_model(cell, decoder):
    model = tiny_model(4, decoder, cell)
    ensemble = Ensemble([model, copy.deepcopy(model)]).eval()
    src, lens = batch()
    limit = LengthLimit(1.5, 4)
    alone, together = greedy(model, src, lens, limit, batch_size=2), greedy(ensemble, src, lens, limit, batch_size=2)
    assert together.tokens == alone.tokens
    for a, b in zip(alone.attention, together.attention):
        assert torch.equal(a, b)
    beams = beam_search(model, src, lens, limit, beam=3, nbest=3)
    ensemble_beams = beam_search(ensemble, src, lens, limit, beam=3, nbest=3)
    assert [[h.tokens for h in hyps] for hyps in ensemble_beams] == [[h.tokens for h in hyps] for hyps in beams]
    assert [[h.score for h in hyps] for hyps in ensemble_beams] == [[h.score for h in hyps] for hyps in beams]


def test_an_ensemble_decodes_batched_as_one_by_one():
    ensemble = Ensemble([tiny_model(5), tiny_model(6)]).eval()
    src, lens = batch()
    limit = LengthLimit(1.5, 4)
    batched = greedy(ensemble, src, lens, limit, batch_size=2, refill=1)
    beams = beam_search(ensemble, src, lens, limit, beam=3)
    for i in range(src.size(0)):
        one = src[i:i + 1, :int(lens[i])]
        assert greedy(ensemble, one, lens[i:i + 1], limit).tokens[0] == batched.tokens[i]
        assert beam_search(ensemble, one, lens[i:i + 1], limit, beam=3)[0][0].tokens == beams[i][0].tokens


def test_members_with_other_vocabularies_or_too_few_are_refused():
    with pytest.raises(S2SError, match="target vocabularies of \\[30, 31\\] pieces"):
        Ensemble([tiny_model(1), tiny_model(2, vocab=31)])
    with pytest.raises(S2SError, match="at least 2 models"):
        Ensemble([tiny_model(1)])
