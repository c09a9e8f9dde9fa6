import pytest
import torch
from torch import nn

from s2s.config import ModelConfig
from s2s.model.decoder import Decoder, cell_step
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
@pytest.mark.parametrize("layers", [1, 2])
def test_step_by_step_equals_teacher_forcing(cell, layers):
    torch.manual_seed(0)
    config = ModelConfig(cell=cell, emb=8, hidden=12, dec_layers=layers, dropout=0.0)
    encoder, decoder = Encoder(20, config).eval(), Decoder(20, 12, config).eval()
    encoded = encoder(torch.tensor([[4, 5, 6, 3]]), torch.tensor([4]))
    tgt_in = torch.tensor([[2, 7, 8, 9]])
    readout, attn = decoder(tgt_in, encoded)
    assert readout.shape == (1, 4, 8) and attn.shape == (1, 4, 4)
    memory, state = decoder.memory(encoded), decoder.init_state(encoded)
    for t in range(4):
        out, state, weights = decoder.step(tgt_in[:, t], state, memory)
        assert torch.allclose(out, readout[:, t], atol=1e-5)
        assert torch.allclose(weights, attn[:, t], atol=1e-6)
