import numpy as np
import pytest
import torch

from conftest import DECODERS
from s2s.config import ModelConfig
from s2s.model import Seq2Seq
from s2s.search import LengthLimit, beam_search, greedy, length_penalty
from s2s.subword import EOS_ID
from s2s.tensors import pad


def model_and_batch(seed=0, decoder="bahdanau", cell="gru"):
    torch.manual_seed(seed)
    model = Seq2Seq(ModelConfig(cell=cell, **DECODERS[decoder], emb=16, hidden=24, dropout=0.0), 30, 30).eval()
    srcs = [np.array(s) for s in ([5, 6, 7, 8, 9], [10, 11], [12, 13, 14])]
    src = pad(srcs, suffix=EOS_ID)
    lens = torch.tensor([len(s) + 1 for s in srcs])
    return model, src, lens


def six_sentences_ending_apart(seed: int, decoder: str, limit: LengthLimit):
    """A tiny model and six sentences (padded, lengths with EOS) whose greedy outputs, with the output
    bias of EOS raised step by step, have at least 3 different lengths."""
    torch.manual_seed(seed)
    model = Seq2Seq(ModelConfig(**DECODERS[decoder], emb=16, hidden=24, dropout=0.0), 30, 30).eval()
    srcs = [np.array(s) for s in ([5, 6, 7, 8, 9], [10, 11], [12, 13, 14], [15, 16, 17, 18], [19], [20, 21, 22])]
    src, lens = pad(srcs, suffix=EOS_ID), torch.tensor([len(s) + 1 for s in srcs])
    for bias in torch.linspace(0.0, 6.0, 25):
        model.output.bias[EOS_ID] = bias
        lengths = [len(t) for t in greedy(model, src, lens, limit).tokens]
        if len(set(lengths)) >= 3:
            return model, src, lens
    raise AssertionError(f"no EOS bias gives 3 output lengths: {lengths}")


def test_length_limit():
    assert LengthLimit(1.5, 10).of(torch.tensor([5, 1])).tolist() == [16, 10]


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("decoder", DECODERS)
def test_batched_greedy_equals_one_by_one_and_respects_max_length(cell, decoder):
    model, src, lens = model_and_batch(0, decoder, cell)
    limit = LengthLimit(1.0, 3)
    batched = greedy(model, src, lens, limit)
    for i in range(3):
        alone = greedy(model, src[i:i + 1, :int(lens[i])], lens[i:i + 1], limit)
        assert alone.tokens[0] == batched.tokens[i]
        assert torch.allclose(alone.attention[0], batched.attention[i], atol=1e-6)
        assert len(batched.tokens[i]) <= int(limit.of(lens[i:i + 1])[0])
        assert EOS_ID not in batched.tokens[i]
        if decoder != "none":
            assert batched.attention[i].shape == (len(batched.tokens[i]) + 1, int(lens[i]))


@torch.no_grad()
def test_sentences_that_end_early_leave_the_batch_without_changing_the_others():
    limit = LengthLimit(1.0, 6)
    model, src, lens = six_sentences_ending_apart(3, "bahdanau", limit)
    batched = greedy(model, src, lens, limit)
    for i in range(len(lens)):
        alone = greedy(model, src[i:i + 1, :int(lens[i])], lens[i:i + 1], limit)
        assert alone.tokens[0] == batched.tokens[i]
        assert torch.allclose(alone.attention[0], batched.attention[i], atol=1e-6)


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("refill", [1, 2])
@torch.no_grad()
def test_continuous_batching_gives_each_sentence_what_it_gets_alone(decoder, refill):
    """Six sentences through two rows: as sentences end at different steps, the next ones take
    their rows (at every free row, or two at a time), encoded two at a time; tokens and attention
    maps are each sentence's own, in the order given."""
    limit = LengthLimit(1.0, 6)
    model, src, lens = six_sentences_ending_apart(3, decoder, limit)
    streamed = greedy(model, src, lens, limit, batch_size=2, refill=refill)
    for i in range(len(lens)):
        alone = greedy(model, src[i:i + 1, :int(lens[i])], lens[i:i + 1], limit)
        assert streamed.tokens[i] == alone.tokens[0]
        assert torch.allclose(streamed.attention[i], alone.attention[0], atol=1e-6)


@torch.no_grad()
def test_greedy_picks_the_argmax_each_step():
    model, src, lens = model_and_batch(1)
    hyp = greedy(model, src[:1], lens[:1], LengthLimit(2.0, 5)).tokens[0]
    memory, state = model.start(model.encode(src[:1], lens[:1]))
    token = torch.tensor([2])
    for expected in hyp:
        log_probs, state, _ = model.step_log_probs(token, state, memory)
        assert int(log_probs.argmax()) == expected
        token = torch.tensor([expected])


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("decoder", DECODERS)
def test_beam_one_is_exactly_greedy(cell, decoder):
    model, src, lens = model_and_batch(2, decoder, cell)
    limit = LengthLimit(1.5, 4)
    greedy_tokens = greedy(model, src, lens, limit).tokens
    beam_tokens = [hyps[0].tokens for hyps in beam_search(model, src, lens, limit, beam=1)]
    assert beam_tokens == greedy_tokens


@torch.no_grad()
@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("decoder", DECODERS)
def test_batched_beam_equals_one_by_one_and_scores_are_sums_of_log_probs(cell, decoder):
    model, src, lens = model_and_batch(3, decoder, cell)
    limit = LengthLimit(1.5, 4)
    batched = beam_search(model, src, lens, limit, beam=4, alpha=1.0, nbest=4)
    for i in range(3):
        alone = beam_search(model, src[i:i + 1, :int(lens[i])], lens[i:i + 1], limit, beam=4, alpha=1.0, nbest=4)
        assert [h.tokens for h in alone[0]] == [h.tokens for h in batched[i]]
        max_len = int(limit.of(lens[i:i + 1])[0])
        for hyp in batched[i]:
            assert len(hyp.tokens) <= max_len and EOS_ID not in hyp.tokens
            # Rescore the hypothesis with teacher forcing: its score is the sum of its log-probs.
            memory, state = model.start(model.encode(src[i:i + 1, :int(lens[i])], lens[i:i + 1]))
            total, token = 0.0, torch.tensor([2])
            for next_token in hyp.tokens + [EOS_ID]:
                log_probs, state, _ = model.step_log_probs(token, state, memory)
                total += float(log_probs[0, next_token])
                token = torch.tensor([next_token])
            assert abs(total - hyp.log_prob) < 1e-4
            assert abs(hyp.score - hyp.log_prob / length_penalty(len(hyp.tokens) + 1, 1.0)) < 1e-6
        scores = [h.score for h in batched[i]]
        assert scores == sorted(scores, reverse=True)


class ScriptedRows:
    """A batch-indexed tensor standing in for a decoder's memory and state."""

    def __init__(self, rows: torch.Tensor):
        self.rows = rows

    def index_select(self, index: torch.Tensor) -> "ScriptedRows":
        return ScriptedRows(self.rows.index_select(0, index))


class NextTokenTable:
    """A model whose next-token log-probs depend only on the previous token: ``table[prev]`` (vocab,)."""

    def __init__(self, table: dict[int, dict[int, float]], vocab: int, default: float):
        self.rows = torch.full((vocab, vocab), default)
        for prev, nexts in table.items():
            for token, log_prob in nexts.items():
                self.rows[prev, token] = log_prob

    def encode(self, src, src_lens):
        return src

    def start(self, encoded):
        return ScriptedRows(encoded), ScriptedRows(encoded)

    def step_log_probs(self, tokens, state, memory):
        return self.rows.index_select(0, tokens), state, None


def test_beam_search_goes_on_while_a_live_hypothesis_can_still_win():
    # BOS -> EOS (-1.0) or A (-0.1); A -> EOS (-0.5) or B (-0.05); B -> EOS (-0.01); anything else -20 / -5.
    # With beam 2, "EOS" and "A EOS" are finished after two steps, but the live "A B" scores -0.15 / lp(3)
    # if it ends next: it does, and "A B EOS" (-0.16 / lp(3) = -0.12) beats "A EOS" (-0.6 / lp(2) = -0.51).
    A, B, BOS = 5, 6, 2
    model = NextTokenTable({BOS: {EOS_ID: -1.0, A: -0.1}, A: {EOS_ID: -0.5, B: -0.05},
                            B: {EOS_ID: -0.01, **{t: -5.0 for t in range(4, 10) if t != B}}}, vocab=10, default=-20.0)
    src, lens = torch.tensor([[7, EOS_ID]]), torch.tensor([2])
    (best,) = beam_search(model, src, lens, LengthLimit(1.5, 10), beam=2, alpha=1.0, nbest=1)[0]
    assert best.tokens == [A, B]
    assert abs(best.score - (-0.16 / length_penalty(3, 1.0))) < 1e-6
    # and it stops there: every hypothesis it filed is at most 3 tokens with EOS, none of the -20 garbage
    hyps = beam_search(model, src, lens, LengthLimit(1.5, 10), beam=2, alpha=1.0, nbest=10)[0]
    assert [h.tokens for h in hyps][:3] == [[A, B], [A], []]
    assert max(len(h.tokens) for h in hyps) <= 2
