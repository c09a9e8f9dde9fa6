import dataclasses

import torch

from s2s.bench import bench, format_table, matmul_flops_per_s, train_flops_per_token
from s2s.model import Seq2Seq
from s2s.subword import Vocabs
from s2s.tensors import ParallelData


def test_bench_measures_training_and_decoding(tiny_project, tiny_params):
    result = bench(tiny_params, ParallelData.load(tiny_project.tensors / "train.pt"),
                   ParallelData.load(tiny_project.tensors / "test.pt"), Vocabs.load(tiny_project.spm),
                   torch.device("cpu"), warmup_steps=1, steps=3, decode_sentences=20, batch1_sentences=4)
    assert result.train_tgt_tokens_per_s > 0 and 0 <= result.train_padding_fraction < 1
    assert result.train_flops_per_tgt_token > 0 and result.matmul_flops_per_s > 0
    assert 0 < result.train_fraction_of_matmul_limit < 1
    assert [(d.batch_size, d.beam) for d in result.decode] == [(16, 1), (16, 5), (1, 1), (1, 5)]
    assert "target tokens/s" in format_table(result)


def test_a_bench_step_is_one_update_of_train_accumulate_batches(tiny_project, tiny_params):
    data = [ParallelData.load(tiny_project.tensors / f"{split}.pt") for split in ("train", "test")]
    per_update = {}
    for accumulate in (1, 3):
        params = dataclasses.replace(tiny_params, train=dataclasses.replace(tiny_params.train, accumulate=accumulate))
        result = bench(params, *data, Vocabs.load(tiny_project.spm), torch.device("cpu"), warmup_steps=1, steps=3,
                       decode_sentences=2, batch1_sentences=1)
        per_update[accumulate] = result.train_tgt_tokens_per_update
    assert 2 * per_update[1] < per_update[3] < 4 * per_update[1]


def test_flops_grow_with_the_model(tiny_project, tiny_params):
    data = ParallelData.load(tiny_project.tensors / "train.pt")
    indices = list(range(8))
    small = Seq2Seq(tiny_params.model, 60, 60)
    big = Seq2Seq(type(tiny_params.model)(emb=32, hidden=64), 60, 60)
    assert train_flops_per_token(big, data, indices, torch.device("cpu")) > \
        2 * train_flops_per_token(small, data, indices, torch.device("cpu"))


def test_matmul_rate_is_measured():
    assert matmul_flops_per_s(torch.device("cpu"), size=128, repeats=2) > 1e6
