"""Attention over encoder states."""

from __future__ import annotations

import torch
from torch import nn


class BahdanauAttention(nn.Module):
    """Additive attention: ``score(q, k) = v^T tanh(W_q q + W_k k)``.

    The key projection does not depend on the decoder step, so it is computed
    once per batch (:meth:`project_keys`) and reused at every step.
    """

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int):
        super().__init__()
        self.key_proj = nn.Linear(key_dim, attn_dim, bias=False)
        self.query_proj = nn.Linear(query_dim, attn_dim, bias=False)
        self.energy = nn.Linear(attn_dim, 1, bias=False)

    def project_keys(self, states: torch.Tensor) -> torch.Tensor:
        """(batch, src_len, key_dim) -> (batch, src_len, attn_dim)."""
        return self.key_proj(states)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Attend from ``query`` (batch, query_dim) over projected ``keys`` (batch, src_len, attn_dim).

        ``values`` (batch, src_len, key_dim); ``mask`` (batch, src_len) True at real tokens.
        Returns the context (batch, key_dim) and the weights (batch, src_len),
        exactly 0 at padding.
        """
        query = self.query_proj(query).unsqueeze(1)                # (batch, 1, attn_dim)
        scores = self.energy(torch.tanh(keys + query)).squeeze(2)  # (batch, src_len)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)                    # (batch, src_len)
        context = torch.bmm(weights.unsqueeze(1), values).squeeze(1)  # (batch, key_dim)
        return context, weights
