import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

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


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_training_has_the_torch_layers_dropout_and_gradients(cell):
    """Two bidirectional layers with dropout between them, in training mode and on the same seed:
    the same states, final states and parameter gradients as running ``encoder.rnn`` itself."""
    config = ModelConfig(cell=cell, bidirectional=True, emb=8, hidden=12, enc_layers=2, dropout=0.4)
    torch.manual_seed(0)
    encoder = Encoder(30, config).train()
    src = torch.tensor([[5, 6, PAD_ID, PAD_ID], [9, 10, 11, 12], [7, PAD_ID, PAD_ID, PAD_ID]])
    lens = torch.tensor([2, 4, 1])
    torch.manual_seed(1)
    ours = encoder(src, lens)
    torch.manual_seed(1)  # the same draws, in the same order: embedding dropout, then between the layers
    packed = pack_padded_sequence(encoder.dropout(encoder.embed(src)), lens, batch_first=True, enforce_sorted=False)
    packed_states, final = encoder.rnn(packed)
    states, _ = pad_packed_sequence(packed_states, batch_first=True, total_length=4)
    hidden, cell_state = final if cell == "lstm" else (final, None)
    assert torch.allclose(ours.states, states, atol=1e-6)
    assert torch.allclose(ours.final, torch.cat([hidden[-2], hidden[-1]], dim=-1), atol=1e-6)
    params = list(encoder.rnn.parameters())
    probe = torch.randn_like(states)
    loss_ours = (ours.states * probe).sum() + ours.final.square().sum()
    loss_torch = (states * probe).sum() + hidden[-2:].square().sum()
    if cell == "lstm":
        assert torch.allclose(ours.final_cell, torch.cat([cell_state[-2], cell_state[-1]], dim=-1), atol=1e-6)
        loss_ours = loss_ours + ours.final_cell.sum()
        loss_torch = loss_torch + cell_state[-2:].sum()
    for got, want in zip(torch.autograd.grad(loss_ours, params), torch.autograd.grad(loss_torch, params)):
        assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_the_torch_layer_runs_in_float32_under_autocast(cell):
    """Training on a GPU runs under bf16 autocast, whose cuDNN path recasts every weight at each
    call; the encoder's layer opts out, so its states are the float32 ones."""
    torch.manual_seed(0)
    encoder = Encoder(30, ModelConfig(cell=cell, emb=8, hidden=12, dropout=0.0)).eval()
    src = torch.tensor([[5, 6, 7, 8], [9, 10, PAD_ID, PAD_ID]])
    lens = torch.tensor([4, 2])
    with torch.no_grad():
        reference = encoder(src, lens)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = encoder(src, lens)
    assert mixed.states.dtype == torch.float32
    assert torch.equal(mixed.states, reference.states) and torch.equal(mixed.final, reference.final)
