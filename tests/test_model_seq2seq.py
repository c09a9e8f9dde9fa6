import pytest
import torch

from conftest import DECODERS
from s2s.config import ModelConfig
from s2s.model import Seq2Seq
from s2s.subword import BOS_ID, EOS_ID, PAD_ID
from s2s.tensors import pad

CELLS = ["gru", "lstm"]


def batch_of(sentences_src, sentences_tgt):
    import numpy as np
    src = pad([np.array(s) for s in sentences_src], suffix=EOS_ID)
    lens = torch.tensor([len(s) + 1 for s in sentences_src])
    tgt_in = pad([np.array(t) for t in sentences_tgt], prefix=BOS_ID)
    tgt_out = pad([np.array(t) for t in sentences_tgt], suffix=EOS_ID)
    return src, lens, tgt_in, tgt_out


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("bidirectional", [True, False])
def test_padded_batch_gives_each_sentence_its_own_loss(cell, decoder, bidirectional):
    torch.manual_seed(0)
    config = ModelConfig(cell=cell, **DECODERS[decoder], bidirectional=bidirectional, emb=16, hidden=24,
                         enc_layers=2, dec_layers=2, dropout=0.0)
    model = Seq2Seq(config, 40, 40).eval()
    srcs = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15]]
    tgts = [[20], [21, 22, 23, 24, 25], [26, 27]]  # longest first is rows 1, 2, 0: not its own inverse
    batched = model.token_losses(*batch_of(srcs, tgts))              # (3, 6)
    for i in range(3):
        alone = model.token_losses(*batch_of([srcs[i]], [tgts[i]]))[0]  # (len + 1,) with EOS
        torch.testing.assert_close(batched[i, :alone.numel()], alone, rtol=0, atol=1e-5)
        assert batched[i, alone.numel():].abs().sum() == 0


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("tie", [True, False])
def test_gradient_reaches_every_parameter(cell, decoder, tie):
    torch.manual_seed(0)
    model = Seq2Seq(ModelConfig(cell=cell, **DECODERS[decoder], emb=8, hidden=12, enc_layers=2, dec_layers=2,
                                tie_embeddings=tie), 30, 30)
    model.token_losses(*batch_of([[5, 6, 7], [8, 9]], [[10, 11], [12, 13, 14]])).sum().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_tied_embeddings_share_storage_and_count_once():
    tied = Seq2Seq(ModelConfig(emb=8, hidden=12, tie_embeddings=True), 30, 30)
    untied = Seq2Seq(ModelConfig(emb=8, hidden=12, tie_embeddings=False), 30, 30)
    assert tied.output.weight is tied.decoder.embed.weight
    readout_in = 12 + 12 + 8  # decoder state, context, embedding
    untied_extra = 30 * 12 + (readout_in * 12 + 12) - (readout_in * 8 + 8)
    assert untied.num_parameters() == tied.num_parameters() + untied_extra


def test_shared_source_embedding_is_the_target_one_and_learns_from_both_sides():
    torch.manual_seed(0)
    config = ModelConfig(emb=8, hidden=12, tie_embeddings=True, share_src_tgt_embeddings=True)
    shared, separate = Seq2Seq(config, 30, 30), Seq2Seq(ModelConfig(emb=8, hidden=12, tie_embeddings=True), 30, 30)
    assert shared.encoder.embed.weight is shared.decoder.embed.weight is shared.output.weight
    assert separate.num_parameters() - shared.num_parameters() == 30 * 8
    src, lens, tgt_in, tgt_out = batch_of([[5, 6, 7]], [[10, 11]])
    shared.token_losses(src, lens, tgt_in, tgt_out).sum().backward()
    grad = shared.encoder.embed.weight.grad
    assert grad[[5, 6, 7]].abs().sum() > 0 and grad[[10, 11]].abs().sum() > 0  # source and target rows


def test_shared_embeddings_need_one_vocabulary():
    from s2s.errors import S2SError
    with pytest.raises(S2SError, match=r"share_src_tgt_embeddings.*30 pieces.*40.*spm\.joint: true"):
        Seq2Seq(ModelConfig(emb=8, hidden=12, share_src_tgt_embeddings=True), 30, 40)


@pytest.mark.parametrize("cell, attention", [("gru", "bahdanau"), ("lstm", "luong")])
def test_overfits_twenty_pairs(cell, attention):
    from conftest import synthetic_pairs
    torch.manual_seed(0)
    vocab = {w: i + 4 for i, w in enumerate(sorted({w for s, t in synthetic_pairs(20) for w in (s + " " + t).split()}))}
    pairs = synthetic_pairs(20)
    batch = batch_of([[vocab[w] for w in s.split()] for s, _ in pairs],
                     [[vocab[w] for w in t.split()] for _, t in pairs])
    config = ModelConfig(cell=cell, attention=attention, emb=32, hidden=64, dropout=0.0)
    model = Seq2Seq(config, len(vocab) + 4, len(vocab) + 4)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    n_tokens = int((batch[3] != PAD_ID).sum())
    for _ in range(150):
        loss = model.token_losses(*batch).sum() / n_tokens
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05


def test_joey_recurrent_model_has_joey_nmt_parameter_count():
    """The peer benchmark's model (benchmarks/peers/joeynmt): Joey NMT 2.3.0 counts 12,262,912
    parameters for it; s2s adds only the output layer's bias (8,000)."""
    config = ModelConfig(attention="luong", attention_score="additive", input_feeding=True, emb=256, hidden=512,
                         tie_embeddings=False)
    assert Seq2Seq(config, 8000, 8000).num_parameters() == 12_262_912 + 8_000
