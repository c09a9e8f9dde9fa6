"""The model's initial weights: PyTorch's per-layer defaults, or one uniform scheme for every layer.

``model.init: pytorch`` keeps what each layer draws when it is built:
embeddings N(0, 1), and every other weight and bias U(-b, b) with b =
1/sqrt(fan_in) for a linear layer and 1/sqrt(hidden) for a recurrent one.
The bound therefore differs between layers: at the Joey NMT peer
architecture (emb 256, biGRU 256 per direction, decoder 512), the encoder
GRU draws from U(+-1/16), the attentional layer, whose input is 1024 wide,
from U(+-1/32), and the rest from U(+-1/sqrt(512)).

``model.init: uniform`` redraws every parameter from one scheme, the one
the peer benchmark configures Joey NMT with (``initializer: uniform``,
``embed_initializer: normal``): embeddings N(0, 1) with the padding row
zero, the output layer's bias zero (Joey's output layer has none), and
every other weight and bias U(-b, b) with b = ``model.init_scale``, or
1/sqrt(hidden) when that is 0. The peer benchmark
(``benchmarks/peers/joeynmt/``) compares the two.

The draws come from torch's generator, which training seeds with
``train.seed`` before it builds the model, as PyTorch's own do.
"""

from __future__ import annotations

import torch
from torch import nn

from s2s.config import ModelConfig


def uniform_bound(config: ModelConfig) -> float:
    """The bound ``b`` of ``model.init: uniform``: ``init_scale``, or 1/sqrt(hidden) when it is 0."""
    return config.init_scale or config.hidden ** -0.5


@torch.no_grad()
def initialize(model: nn.Module, output: nn.Linear, config: ModelConfig) -> None:
    """Redraw ``model``'s parameters by ``config.init`` (nothing to do for ``pytorch``).

    ``output`` is the layer over the target vocabulary, whose bias starts at
    zero under ``uniform``. A parameter shared by several modules (tied
    embeddings) is drawn once, as the embedding it is.
    """
    if config.init == "pytorch":
        return
    bound = uniform_bound(config)
    drawn: set[int] = set()
    for module in model.modules():  # embeddings first: a weight tied to one is an embedding
        if isinstance(module, nn.Embedding) and id(module.weight) not in drawn:
            drawn.add(id(module.weight))
            module.weight.normal_(0.0, 1.0)
            if module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if id(param) in drawn:
                continue
            drawn.add(id(param))
            if module is output and name == "bias":
                param.zero_()
            else:
                param.uniform_(-bound, bound)
