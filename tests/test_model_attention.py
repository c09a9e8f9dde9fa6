import torch

from s2s.model.attention import BahdanauAttention


def test_weights_sum_to_one_and_ignore_padding():
    torch.manual_seed(0)
    attention = BahdanauAttention(query_dim=6, key_dim=4, attn_dim=5)
    values = torch.randn(2, 3, 4)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    context, weights = attention(torch.randn(2, 6), attention.project_keys(values), values, mask)
    assert context.shape == (2, 4) and weights.shape == (2, 3)
    assert torch.allclose(weights.sum(-1), torch.ones(2))
    assert weights[1, 2] == 0
    # Changing what sits under the padding changes nothing.
    values2 = values.clone()
    values2[1, 2] = 100.0
    context2, _ = attention(torch.randn(2, 6).copy_(torch.zeros(2, 6)), attention.project_keys(values2),
                            values2, mask)
    context0, _ = attention(torch.zeros(2, 6), attention.project_keys(values), values, mask)
    assert torch.allclose(context2[1], context0[1], atol=1e-6)
