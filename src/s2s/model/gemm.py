"""Linear layers whose decoding products run on oneDNN's float32 kernels on the CPU.

PyTorch's CPU ``F.linear`` calls MKL's SGEMM. A decoding step multiplies a
few dozen rows by each weight, and at those sizes MKL's SGEMM uses the
cores poorly; oneDNN, which PyTorch ships as well, does the same products
faster, most of all with the weight in oneDNN's blocked layout (the
figures, from ``benchmarks/gemm_sweep.py``, are in ``docs/performance.md``).
The result is the same float32 sum of products in another order, within
rounding of MKL's, as MKL's own results differ between CPUs.

So in inference mode (decoding: :mod:`s2s.search`), :func:`linear` and
:class:`Linear` run oneDNN on float32 CPU tensors. Everywhere else, training
and the validation loss included, they are ``F.linear``: autograd needs it,
and at training's thousands of rows MKL is as fast.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn


@functools.cache
def onednn_linear_op():
    """PyTorch's oneDNN linear (``torch.ops.mkldnn._linear_pointwise``), or None where this build lacks it."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        return torch.ops.mkldnn._linear_pointwise.default
    except (AttributeError, RuntimeError):
        return None


def runs_on_onednn(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether :func:`linear` of ``x`` and ``weight`` runs oneDNN: in inference mode, float32 on the CPU,
    a contiguous weight (oneDNN's kernel for a strided one, such as a column slice, is far slower),
    and a PyTorch built with the op."""
    return (torch.is_inference_mode_enabled() and x.device.type == "cpu" and x.dtype == torch.float32
            and weight.dtype == torch.float32 and weight.is_contiguous() and onednn_linear_op() is not None)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: "torch.Tensor | None" = None,
           blocked: "torch.Tensor | None" = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``: x (…, in), weight (out, in), bias (out,) -> (…, out).

    ``blocked``: ``weight`` in oneDNN's blocked layout, used in its place when oneDNN runs.
    """
    if runs_on_onednn(x, weight):  # a strided x is copied: cheaper than its strided kernel
        return onednn_linear_op()(x.contiguous(), weight if blocked is None else blocked, bias, "none", [], "")
    return F.linear(x, weight, bias)


class Linear(nn.Linear):
    """``nn.Linear`` (the same parameters, initialisation and state dict) computed by :func:`linear`.

    Inside :func:`blocked_weights` it multiplies by ``blocked``, a copy of its
    weight in oneDNN's blocked layout.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.blocked: "torch.Tensor | None" = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias, self.blocked)


@contextlib.contextmanager
def blocked_weights(model: nn.Module) -> Iterator[None]:
    """Within: each :class:`Linear` of ``model`` multiplies by a copy of its weight in oneDNN's
    blocked layout, made on entry and dropped on exit; the weights must not change inside (decoding).

    Faster than the plain weight at the output layer's sizes, with the same results
    (``docs/performance.md``). Made per use, not cached against the weight: a fused Adam
    step changes the weights without bumping their version counter, and a cache keyed on it decoded
    stale weights in training's validation.
    """
    reorder = getattr(torch.ops.mkldnn, "_reorder_linear_weight", None)
    layers = [module for module in model.modules() if isinstance(module, Linear)
              and module.weight.device.type == "cpu" and module.weight.dtype == torch.float32]
    if reorder is None or onednn_linear_op() is None:
        layers = []
    try:
        for layer in layers:
            # the layout made for 64 rows served 8 to 320 rows as well as each one's own (1 row: plain's)
            layer.blocked = reorder(layer.weight.detach(), 64)
        yield
    finally:
        for layer in layers:
            layer.blocked = None
