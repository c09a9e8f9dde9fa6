import pytest
import torch
from torch import nn

from conftest import DECODERS
from s2s.config import ModelConfig
from s2s.model import Seq2Seq
from s2s.model.initialization import uniform_bound
from s2s.subword import PAD_ID

# The peer benchmark's shape, scaled down: a bidirectional encoder of hidden/2 per direction and an
# attentional layer over [s; c] of 2*hidden, whose PyTorch bounds differ from 1/sqrt(hidden).
PEER = {"attention": "luong", "input_feeding": True, "attention_score": "additive", "emb": 16, "hidden": 64,
        "tie_embeddings": False}


def built(seed: int = 0, **fields) -> Seq2Seq:
    torch.manual_seed(seed)
    return Seq2Seq(ModelConfig(**fields), 50, 60)


def embeddings(model: Seq2Seq) -> dict[int, nn.Embedding]:
    return {id(m.weight): m for m in model.modules() if isinstance(m, nn.Embedding)}


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_uniform_draws_every_weight_within_one_bound_and_embeddings_from_a_unit_normal(decoder, cell):
    config = {**DECODERS[decoder], "cell": cell, "emb": 16, "hidden": 64, "enc_layers": 2, "dec_layers": 2,
              "init": "uniform"}
    model = built(**config)
    bound = 64 ** -0.5
    embedded = embeddings(model)
    for name, param in model.named_parameters():
        if id(param) in embedded:
            assert 0.9 < param.std() < 1.1, name
            assert param[PAD_ID].abs().sum() == 0, f"{name}: the padding row is not zero"
        elif name == "output.bias":
            assert param.abs().sum() == 0
        else:
            assert param.abs().max() <= bound, name
            if param.numel() >= 64:  # a draw of that many reaches near the bound
                assert param.abs().max() > 0.8 * bound, name


def test_pytorch_init_keeps_each_layers_own_bound():
    model = built(**PEER)                                   # init: pytorch, the default
    encoder_gru = model.encoder.rnn.weight_hh_l0            # U(+-1/sqrt(32)), above 1/sqrt(64)
    combine = model.decoder.combine.weight                  # U(+-1/sqrt(128)), below it
    assert encoder_gru.abs().max() > 64 ** -0.5
    assert combine.abs().max() <= 128 ** -0.5
    assert model.output.bias.abs().sum() > 0


def test_uniform_reaches_the_layers_pytorch_draws_otherwise():
    model = built(**PEER, init="uniform")
    bound = 64 ** -0.5
    assert model.encoder.rnn.weight_hh_l0.abs().max() <= bound
    assert model.decoder.combine.weight.abs().max() > 128 ** -0.5  # wider than PyTorch's bound there


def test_init_scale_sets_the_bound():
    config = ModelConfig(**PEER, init="uniform", init_scale=0.1)
    assert uniform_bound(config) == 0.1
    assert uniform_bound(ModelConfig(**PEER, init="uniform")) == 64 ** -0.5
    model = built(**PEER, init="uniform", init_scale=0.1)
    weight = model.decoder.cells[0].weight_hh
    assert 0.08 < weight.abs().max() <= 0.1


@pytest.mark.parametrize("sharing", [{"tie_embeddings": True},
                                     {"tie_embeddings": True, "share_src_tgt_embeddings": True}])
def test_a_shared_embedding_is_drawn_once_as_an_embedding(sharing):
    torch.manual_seed(0)
    model = Seq2Seq(ModelConfig(emb=16, hidden=64, init="uniform", **sharing), 60, 60)
    assert model.output.weight is model.decoder.embed.weight
    assert 0.9 < model.output.weight.std() < 1.1
    assert model.output.weight[PAD_ID].abs().sum() == 0


def test_uniform_is_reproducible_from_the_seed():
    first, again, other = (built(seed, **PEER, init="uniform") for seed in (1, 1, 2))
    for (name, a), b, c in zip(first.state_dict().items(), again.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b), name
        if name != "output.bias":
            assert not torch.equal(a, c), name
