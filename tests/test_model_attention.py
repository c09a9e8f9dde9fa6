import torch

import pytest

from s2s.model.attention import BahdanauAttention, LuongAttention


def test_weights_sum_to_one_and_ignore_padding():
    torch.manual_seed(0)
    attention = BahdanauAttention(query_dim=6, key_dim=4, attn_dim=5)
    values = torch.randn(2, 3, 4)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    context, weights = attention(torch.randn(2, 6), attention.project_keys(values), values, mask)
    assert context.shape == (2, 4) and weights.shape == (2, 3)
    assert torch.allclose(weights.sum(-1), torch.ones(2))
    assert weights[1, 2] == 0
    assert torch.allclose(context, torch.einsum("bs,bsd->bd", weights, values), atol=1e-6)  # the weighted mean
    # Changing what sits under the padding changes nothing.
    values2 = values.clone()
    values2[1, 2] = 100.0
    context2, _ = attention(torch.randn(2, 6).copy_(torch.zeros(2, 6)), attention.project_keys(values2),
                            values2, mask)
    context0, _ = attention(torch.zeros(2, 6), attention.project_keys(values), values, mask)
    assert torch.allclose(context2[1], context0[1], atol=1e-6)


@pytest.mark.parametrize("score", ["general", "dot"])
def test_luong_attends_from_every_step_at_once(score):
    torch.manual_seed(0)
    attention = LuongAttention(query_dim=4, key_dim=4, score=score)
    values = torch.randn(2, 3, 4)
    mask = torch.tensor([[True, True, True], [True, False, False]])
    queries = torch.randn(2, 5, 4)
    context, weights = attention(queries, attention.project_keys(values), values, mask)
    assert context.shape == (2, 5, 4) and weights.shape == (2, 5, 3)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 5))
    assert torch.all(weights[1, :, 1:] == 0) and torch.allclose(context[1], values[1, 0].expand(5, 4))
    assert torch.allclose(context, weights @ values, atol=1e-6)  # each step's weighted mean of the values
    one, _ = attention(queries[:, 2:3], attention.project_keys(values), values, mask)
    assert torch.allclose(one[:, 0], context[:, 2], atol=1e-6)


def test_dot_needs_equal_sizes():
    with pytest.raises(ValueError, match="dot attention needs"):
        LuongAttention(query_dim=4, key_dim=6, score="dot")
