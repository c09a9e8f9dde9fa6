"""Attention over encoder states."""

from __future__ import annotations

import torch
from torch import nn

from s2s.model.gemm import Linear


class BahdanauAttention(nn.Module):
    """Additive attention: ``score(q, k) = v^T tanh(W_q q + W_k k)``.

    The key projection does not depend on the decoder step, so it is computed
    once per batch (:meth:`project_keys`) and reused at every step.
    """

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int):
        super().__init__()
        self.key_proj = Linear(key_dim, attn_dim, bias=False)
        self.query_proj = Linear(query_dim, attn_dim, bias=False)
        self.energy = Linear(attn_dim, 1, bias=False)

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
        scores = self.energy(torch.tanh_(keys + query)).squeeze(2)  # (batch, src_len); in place: one buffer, not two
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)                    # (batch, src_len)
        context = torch.bmm(weights.unsqueeze(1), values).squeeze(1)  # (batch, key_dim)
        return context, weights


class LuongAttention(nn.Module):
    """Multiplicative attention from the current decoder state (Luong et al., 2015).

    ``general``: ``score(q, k) = q^T W k``; ``dot``: ``score(q, k) = q^T k``
    (needs ``query_dim == key_dim``). It attends from every decoder step at
    once, so teacher forcing computes it in one batched product.
    """

    def __init__(self, query_dim: int, key_dim: int, score: str = "general"):
        super().__init__()
        if score == "dot" and query_dim != key_dim:
            raise ValueError(f"dot attention needs query_dim == key_dim, got {query_dim} and {key_dim}")
        self.key_proj = Linear(key_dim, query_dim, bias=False) if score == "general" else None

    def project_keys(self, states: torch.Tensor) -> torch.Tensor:
        """(batch, src_len, key_dim) -> (batch, src_len, query_dim)."""
        return states if self.key_proj is None else self.key_proj(states)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Attend from ``queries`` (batch, steps, query_dim) over ``keys`` (batch, src_len, query_dim).

        ``values`` (batch, src_len, key_dim); ``mask`` (batch, src_len) True at real tokens.
        Returns contexts (batch, steps, key_dim) and weights (batch, steps, src_len).
        """
        scores = torch.bmm(queries, keys.transpose(1, 2))                   # (batch, steps, src_len)
        scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        return torch.bmm(weights, values), weights                          # (batch, steps, key_dim)
