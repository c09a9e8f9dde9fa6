import dataclasses
import types

import numpy as np
import pytest
import torch
from torch import nn

import s2s.bench as bench_module
from s2s.bench import bench, format_table, matmul_flops_per_s, train_flops_per_token
from s2s.checkpoint import load_model
from s2s.model import Seq2Seq
from s2s.search import LengthLimit
from s2s.subword import PAD_ID, Vocabs
from s2s.tensors import ParallelData, collate
from s2s.train import build_model, epoch_updates
from s2s.translator import Translator

LIMIT = 1e12  # the device's matmul rate bench() is given in these tests, instead of measuring it (seconds)


@pytest.fixture
def fixed_matmul_rate(monkeypatch):
    monkeypatch.setattr(bench_module, "matmul_flops_per_s", lambda device: LIMIT)


def measured(params, data: ParallelData, warmup: int, steps: int) -> list[list[np.ndarray]]:
    """The updates bench() times: those after the warm-up ones, in training's order of epoch 1."""
    updates = epoch_updates(data, params.train, epoch=1)
    assert len(updates) >= warmup + steps  # the tests below stay within one epoch
    return updates[warmup:warmup + steps]


def test_bench_measures_training_and_decoding(trained_project, trained_params, fixed_matmul_rate):
    train_data, test_data = (ParallelData.load(trained_project.split_tensors(s)) for s in ("train", "test"))
    vocabs = Vocabs.load(trained_project.spm)
    model, _ = load_model(trained_project.model, torch.device("cpu"))
    result = bench(trained_params, train_data, test_data, vocabs, torch.device("cpu"), model=model,
                   warmup_steps=1, steps=3, decode_sentences=20, batch1_sentences=4)
    assert result.device == "cpu" and result.threads == torch.get_num_threads()
    assert result.params == model.num_parameters()

    # training: real target tokens (with EOS) and padding of the timed updates, from the data itself
    batches = [indices for group in measured(trained_params, train_data, 1, 3) for indices in group]
    real = sum(int(train_data.tgt_lens[indices].sum()) + len(indices) for indices in batches)
    assert result.train_tgt_tokens_per_update == pytest.approx(real / 3)
    padded = [collate(train_data, indices).tgt_out for indices in batches]
    pad_fraction = sum(int((t == PAD_ID).sum()) for t in padded) / sum(t.numel() for t in padded)
    assert 0 < pad_fraction and result.train_padding_fraction == pytest.approx(pad_fraction)
    # FLOPs are counted on the first batch of training (they depend on shapes, not weights)
    first = epoch_updates(train_data, trained_params.train, epoch=1)[0][0]
    flops = train_flops_per_token(build_model(trained_params.model, vocabs), train_data, first, torch.device("cpu"))
    assert result.train_flops_per_tgt_token == flops
    assert result.matmul_flops_per_s == LIMIT
    assert result.train_fraction_of_matmul_limit == pytest.approx(result.train_tgt_tokens_per_s * flops / LIMIT)

    # decoding: one row per (batch, beam) asked for, of the given model, on the first test sentences
    assert [(d.batch_size, d.beam, d.sentences) for d in result.decode] == \
        [(16, 1, 20), (16, 5, 20), (1, 1, 4), (1, 5, 4)]
    for row in result.decode:
        sources = [test_data.src(i) for i in range(row.sentences)]
        translator = Translator(model, vocabs, LengthLimit.from_eval(trained_params.eval), row.batch_size,
                                beam=row.beam, len_penalty=trained_params.eval.len_penalty)
        out_tokens = sum(len(t) + 1 for t in translator.translate_ids(sources).tokens)
        assert row.tgt_tokens_per_s / row.sentences_per_s == pytest.approx(out_tokens / row.sentences)
    table = format_table(result)
    assert f"{result.train_tgt_tokens_per_s:,.0f} target tokens/s" in table
    assert f"{result.train_padding_fraction:.1%} padding" in table
    assert len(table.splitlines()) == 5 + len(result.decode)


def test_a_bench_step_is_one_update_of_train_accumulate_batches(trained_project, trained_params, fixed_matmul_rate):
    data = [ParallelData.load(trained_project.split_tensors(split)) for split in ("train", "test")]
    for accumulate in (1, 3):
        params = dataclasses.replace(trained_params,
                                     train=dataclasses.replace(trained_params.train, accumulate=accumulate))
        result = bench(params, *data, Vocabs.load(trained_project.spm), torch.device("cpu"), warmup_steps=1,
                       steps=2, decode_sentences=2, batch1_sentences=1)
        groups = measured(params, data[0], 1, 2)
        assert [len(group) for group in groups] == [accumulate] * 2
        # the target tokens of one update are those of its `accumulate` batches, EOS included
        tokens = [sum(int(data[0].tgt_lens[indices].sum()) + len(indices) for indices in group) for group in groups]
        assert result.train_tgt_tokens_per_update == pytest.approx(sum(tokens) / 2)


class MatmulOnly(nn.Module):
    """A 'model' whose loss is one matrix product: (batch, tgt_len, 7) x (7, 5), summed."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(7, 5))

    def token_losses(self, src, src_lens, tgt_in, tgt_out):
        return (torch.ones(*tgt_out.shape, 7) @ self.weight).sum(-1)  # (batch, tgt_len)


def test_flops_are_forward_and_backward_per_real_target_token(trained_project):
    data = ParallelData.load(trained_project.split_tensors("train"))
    indices = np.arange(8)
    rows, positions = 8, int(data.tgt_lens[indices].max()) + 1              # the padded target tensor
    real = int(data.tgt_lens[indices].sum()) + 8                            # target tokens with EOS
    assert real < rows * positions                                           # there is padding to leave out
    forward = 2 * rows * positions * 7 * 5
    backward = forward                                                       # the weight's gradient only
    assert train_flops_per_token(MatmulOnly(), data, indices, torch.device("cpu")) == (forward + backward) / real


def test_flops_grow_with_the_model(trained_project, trained_params):
    data = ParallelData.load(trained_project.split_tensors("train"))
    indices = list(range(8))
    small = Seq2Seq(trained_params.model, 60, 60)
    big = Seq2Seq(type(trained_params.model)(emb=32, hidden=64), 60, 60)
    assert train_flops_per_token(big, data, indices, torch.device("cpu")) > \
        2 * train_flops_per_token(small, data, indices, torch.device("cpu"))


def test_matmul_rate_is_the_flops_of_the_products_over_their_time(monkeypatch):
    ticks = iter([10.0, 12.5])  # the clock around the timed products: 2.5 s
    monkeypatch.setattr(bench_module, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks)))
    assert matmul_flops_per_s(torch.device("cpu"), size=64, repeats=3) == 2 * 64 ** 3 * 3 / 2.5


def test_scaling_times_the_same_updates_in_two_processes_against_one(trained_project, trained_params,
                                                                     fixed_matmul_rate):
    data = [ParallelData.load(trained_project.split_tensors(split)) for split in ("train", "test")]
    params = dataclasses.replace(trained_params, train=dataclasses.replace(trained_params.train, threads=1))
    baseline = bench(params, *data, Vocabs.load(trained_project.spm), torch.device("cpu"), warmup_steps=1,
                     steps=3, decode_sentences=2, batch1_sentences=1)
    result = bench_module.scaling(params, str(trained_project.root), baseline, nproc=2, warmup_steps=1, steps=3)
    assert (result.processes, result.threads_per_process) == (2, 1)
    assert result.baseline_tgt_tokens_per_s == baseline.train_tgt_tokens_per_s
    assert result.tgt_tokens_per_s > 0
    # the CPU baseline has the processes' cores: efficiency is the speedup itself
    assert result.speedup == pytest.approx(result.tgt_tokens_per_s / baseline.train_tgt_tokens_per_s)
    assert result.efficiency == result.speedup
    baseline.scaling = result
    table = format_table(baseline)
    assert f"2 processes x 1 threads: {result.tgt_tokens_per_s:,.0f} target tokens/s in all" in table
    assert f"scaling efficiency {result.efficiency:.0%}" in table
