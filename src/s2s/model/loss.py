"""Label-smoothed cross-entropy over the vocabulary, fused into one autograd function.

For logits ``z`` (N, V), target ``y`` and smoothing ``eps`` the loss of a row is

    loss = (1 - eps) * -log p_y  +  eps * mean_v(-log p_v),      p = softmax(z)

exactly what ``F.cross_entropy(z, y, label_smoothing=eps, reduction="none")``
computes, and its gradient is ``p - q`` with ``q = (1 - eps) onehot(y) + eps / V``.
Written out, the backward makes one (N, V) tensor where autograd's
composition of log-softmax, NLL and the smoothing term makes and adds
several: on the CPU the output layer's loss is memory-bound, so this
is a large share of a training step.
"""

from __future__ import annotations

import torch
from torch.autograd.function import FunctionCtx, once_differentiable


class _SmoothedCrossEntropy(torch.autograd.Function):
    """Loss (N,) of logits (N, V); saves log-probabilities (N, V) for a backward of one (N, V) tensor."""

    @staticmethod
    def forward(ctx: FunctionCtx, logits: torch.Tensor, target: torch.Tensor, smoothing: float) -> torch.Tensor:
        log_probs = torch.log_softmax(logits, dim=-1)                 # (N, V)
        loss = -(1.0 - smoothing) * log_probs.gather(1, target.unsqueeze(1)).squeeze(1)  # (N,)
        if smoothing:
            loss = loss - smoothing * log_probs.mean(dim=-1)
        ctx.save_for_backward(log_probs, target)
        ctx.smoothing = smoothing
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_loss: torch.Tensor) -> tuple:
        log_probs, target = ctx.saved_tensors
        smoothing = ctx.smoothing
        grad = log_probs.exp()                                        # (N, V) p
        if smoothing:
            grad.sub_(smoothing / log_probs.size(-1))
        grad.scatter_add_(1, target.unsqueeze(1),
                          torch.full_like(grad[:, :1], -(1.0 - smoothing)))  # p - q
        grad.mul_(grad_loss.unsqueeze(1))
        return grad, None, None


def smoothed_cross_entropy(logits: torch.Tensor, target: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Per-row loss (N,) of logits (N, V) against target ids (N,) of real positions only.

    There is no padding to ignore: :meth:`Seq2Seq.token_losses` packs the
    target, so every row is a real target token.
    """
    return _SmoothedCrossEntropy.apply(logits, target, float(smoothing))
