import pytest
import torch
from torch import nn

from s2s.config import ModelConfig
from s2s.model.decoder import build_decoder, cell_step
from s2s.model.encoder import Encoder


@pytest.mark.parametrize("cell_type", [nn.GRUCell, nn.LSTMCell])
def test_cell_step_matches_torch_cells(cell_type):
    torch.manual_seed(0)
    cell = cell_type(5, 7)
    x, h, c = torch.randn(3, 5), torch.randn(3, 7), torch.randn(3, 7)
    gates = nn.functional.linear(x, cell.weight_ih, cell.bias_ih)
    if cell_type is nn.LSTMCell:
        expected = cell(x, (h, c))
        got = cell_step(cell, gates, (h, c))
        assert torch.allclose(got[0], expected[0], atol=1e-6) and torch.allclose(got[1], expected[1], atol=1e-6)
    else:
        assert torch.allclose(cell_step(cell, gates, (h, None))[0], cell(x, h), atol=1e-6)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("attention", ["bahdanau", "luong", "none"])
@pytest.mark.parametrize("layers", [1, 2])
def test_step_by_step_equals_teacher_forcing(cell, attention, layers):
    torch.manual_seed(0)
    config = ModelConfig(cell=cell, attention=attention, emb=8, hidden=12, dec_layers=layers, dropout=0.0)
    encoder, decoder = Encoder(20, config).eval(), build_decoder(20, 12, config).eval()
    encoded = encoder(torch.tensor([[4, 5, 6, 3]]), torch.tensor([4]))
    tgt_in = torch.tensor([[2, 7, 8, 9]])
    readout, attn = decoder(tgt_in, encoded)
    assert readout.shape == (1, 4, 8)
    assert (attn is None) == (attention == "none")
    memory, state = decoder.memory(encoded), decoder.init_state(encoded)
    for t in range(4):
        out, state, weights = decoder.step(tgt_in[:, t], state, memory)
        assert torch.allclose(out, readout[:, t], atol=1e-5)
        if attn is not None:
            assert attn.shape == (1, 4, 4) and torch.allclose(weights, attn[:, t], atol=1e-6)


def test_dot_score_uses_no_key_projection():
    config = ModelConfig(attention="luong", attention_score="dot", emb=8, hidden=12)
    decoder = build_decoder(20, 12, config)
    general = build_decoder(20, 12, ModelConfig(attention="luong", emb=8, hidden=12))
    assert sum(p.numel() for p in general.parameters()) - sum(p.numel() for p in decoder.parameters()) == 144
