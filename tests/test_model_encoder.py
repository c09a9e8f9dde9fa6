import pytest
import torch

from s2s.config import ModelConfig
from s2s.model.encoder import Encoder
from s2s.subword import PAD_ID


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_shapes_and_padding_invariance(cell, bidirectional):
    torch.manual_seed(0)
    config = ModelConfig(cell=cell, bidirectional=bidirectional, emb=8, hidden=12, enc_layers=2, dropout=0.0)
    encoder = Encoder(30, config).eval()
    src = torch.tensor([[5, 6, 7, 8], [9, 10, PAD_ID, PAD_ID]])
    lens = torch.tensor([4, 2])
    out = encoder(src, lens)
    assert out.states.shape == (2, 4, 12) and out.final.shape == (2, 12)
    assert (out.final_cell is not None) == (cell == "lstm")
    assert out.mask.tolist() == [[True] * 4, [True, True, False, False]]
    assert torch.all(out.states[1, 2:] == 0)
    alone = encoder(src[1:, :2], lens[1:])
    assert torch.allclose(alone.states[0], out.states[1, :2], atol=1e-6)
    assert torch.allclose(alone.final[0], out.final[1], atol=1e-6)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_training_encodes_as_the_torch_layer_does(cell, bidirectional):
    """With gradients on the encoder runs its own gate math; it must give the torch layer's states."""
    torch.manual_seed(0)
    config = ModelConfig(cell=cell, bidirectional=bidirectional, emb=8, hidden=12, enc_layers=2, dropout=0.0)
    encoder = Encoder(30, config)
    src = torch.tensor([[5, 6, PAD_ID, PAD_ID], [9, 10, 11, 12], [7, PAD_ID, PAD_ID, PAD_ID]])
    lens = torch.tensor([2, 4, 1])  # not sorted: the final states must come back in the batch's order
    trained = encoder(src, lens)
    with torch.no_grad():
        reference = encoder(src, lens)
    assert trained.states.requires_grad and not reference.states.requires_grad
    assert torch.allclose(trained.states, reference.states, atol=1e-6)
    assert torch.allclose(trained.final, reference.final, atol=1e-6)
    if cell == "lstm":
        assert torch.allclose(trained.final_cell, reference.final_cell, atol=1e-6)
