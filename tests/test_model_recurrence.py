import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from s2s.model.recurrence import packed_layer


@pytest.mark.parametrize("lstm", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_packed_layer_matches_the_torch_layer_and_its_gradients(lstm, reverse):
    torch.manual_seed(0)
    layer = (nn.LSTM if lstm else nn.GRU)(6, 5, bidirectional=reverse)
    lengths = torch.tensor([7, 7, 5, 3, 3, 1])  # ties and a one-token row
    inputs = torch.randn(6, 7, 6)
    packed = pack_padded_sequence(inputs, lengths, batch_first=True)
    suffix = "_l0_reverse" if reverse else "_l0"
    weight_ih, bias_ih, weight_hh, bias_hh = (getattr(layer, f"{name}{suffix}")
                                              for name in ("weight_ih", "bias_ih", "weight_hh", "bias_hh"))
    states, (h, c) = packed_layer(packed.data @ weight_ih.t() + bias_ih, packed.batch_sizes.tolist(),
                                  weight_hh, bias_hh, lstm, reverse)
    expected, final = layer(packed)
    final_h, final_c = final if lstm else (final, None)
    direction = slice(5, 10) if reverse else slice(0, 5)
    assert torch.allclose(states, expected.data[:, direction], atol=1e-6)
    assert torch.allclose(h, final_h[int(reverse)], atol=1e-6)
    assert (c is None) == (not lstm)
    if lstm:
        assert torch.allclose(c, final_c[int(reverse)], atol=1e-6)
    # the same gradients for every parameter the direction uses
    probe = torch.randn_like(states)
    params = [weight_ih, bias_ih, weight_hh, bias_hh]
    loss_ours = (states * probe).sum() + h.square().sum()
    loss_torch = (expected.data[:, direction] * probe).sum() + final_h[int(reverse)].square().sum()
    if lstm:  # the final cell state feeds the decoder's bridge
        loss_ours, loss_torch = loss_ours + c.sum(), loss_torch + final_c[int(reverse)].sum()
    ours, theirs = torch.autograd.grad(loss_ours, params), torch.autograd.grad(loss_torch, params)
    for got, want in zip(ours, theirs):
        assert torch.allclose(got, want, atol=1e-5)


def test_a_row_of_one_position_reads_only_its_token():
    torch.manual_seed(0)
    weight_hh, bias_hh = torch.randn(9, 3), torch.randn(9)
    gates = torch.randn(4, 9)  # rows of lengths 3 and 1: steps of 2, 1, 1 rows
    forward, _ = packed_layer(gates, [2, 1, 1], weight_hh, bias_hh, lstm=False, reverse=False)
    backward, _ = packed_layer(gates, [2, 1, 1], weight_hh, bias_hh, lstm=False, reverse=True)
    alone, _ = packed_layer(gates[1:2], [1], weight_hh, bias_hh, lstm=False, reverse=False)
    assert torch.allclose(forward[1], alone[0]) and torch.allclose(backward[1], alone[0])
