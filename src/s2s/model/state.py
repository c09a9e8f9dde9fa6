"""What a decoder carries between steps, and where its first state comes from.

:class:`Memory` holds the encoder side of a batch (states, attention keys,
mask), :class:`DecoderState` the recurrent state, and :class:`Bridge` makes
the initial state from the final encoder state. Search reorders, slices and
joins both by rows (beams, finished sentences, refilled batches).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from s2s.config import ModelConfig
from s2s.model.encoder import EncoderOutput
from s2s.model.gemm import Linear
from s2s.model.recurrence import LayerState, join_states


@dataclass
class Memory:
    """Per-batch constants of decoding: encoder states and their projected keys."""

    values: torch.Tensor  # (batch, src_len, enc_dim)
    keys: torch.Tensor    # (batch, src_len, attn_dim)
    mask: torch.Tensor    # (batch, src_len) bool

    def index_select(self, index: torch.Tensor) -> "Memory":
        return Memory(self.values.index_select(0, index), self.keys.index_select(0, index),
                      self.mask.index_select(0, index))

    def prefix(self, rows: int, src_len: int) -> "Memory":
        """Views of the first ``rows`` rows and ``src_len`` source positions."""
        return Memory(self.values[:rows, :src_len], self.keys[:rows, :src_len], self.mask[:rows, :src_len])

    @staticmethod
    def cat(parts: list["Memory"]) -> "Memory":
        """The rows of ``parts`` one after the other, each padded to the longest source.

        Padding positions hold zero values and keys and a False mask, so
        attention gives them weight exactly 0.
        """
        width = max(part.mask.size(1) for part in parts)

        def joined(tensors: list[torch.Tensor]) -> torch.Tensor:  # each (rows, src_len, …) -> (all rows, width, …)
            return torch.cat([t if t.size(1) == width else torch.cat(
                [t, t.new_zeros(t.size(0), width - t.size(1), *t.shape[2:])], dim=1) for t in tensors])

        return Memory(joined([p.values for p in parts]), joined([p.keys for p in parts]),
                      joined([p.mask for p in parts]))


@dataclass
class DecoderState:
    """The recurrent state between decoding steps.

    ``layers``: one (h, c) per decoder layer; ``feed``: what the next step
    reads besides the embedding, carried over (input feeding's attentional
    vector (batch, output_dim)), or None.
    """

    layers: list[LayerState]
    feed: "torch.Tensor | None" = None

    def index_select(self, index: torch.Tensor) -> "DecoderState":
        """The state of the rows ``index`` (rows,), in that order."""
        layers = [(h.index_select(0, index), None if c is None else c.index_select(0, index))
                  for h, c in self.layers]
        return DecoderState(layers, None if self.feed is None else self.feed.index_select(0, index))

    def prefix(self, rows: int) -> "DecoderState":
        """Views of the state of the first ``rows`` rows."""
        return DecoderState([(h[:rows], None if c is None else c[:rows]) for h, c in self.layers],
                            None if self.feed is None else self.feed[:rows])

    @staticmethod
    def cat(parts: list["DecoderState"]) -> "DecoderState":
        """The rows of ``parts`` one after the other."""
        layers = [join_states(list(layer), torch.cat) for layer in zip(*(part.layers for part in parts))]
        feed = None if parts[0].feed is None else torch.cat([part.feed for part in parts])
        return DecoderState(layers, feed)


def readout_size(config: ModelConfig) -> int:
    """Size of the vector the output layer reads: emb when tied to the embedding, else hidden."""
    return config.emb if config.tie_embeddings else config.hidden


class Bridge(nn.Module):
    """Each decoder layer's initial state = tanh(W · final encoder state); LSTM cells likewise."""

    def __init__(self, enc_dim: int, hidden: int, layers: int, lstm: bool):
        super().__init__()
        self.layers = layers
        self.hidden = Linear(enc_dim, layers * hidden)
        self.cell = Linear(enc_dim, layers * hidden) if lstm else None

    def forward(self, encoded: EncoderOutput) -> list[LayerState]:
        h = torch.tanh(self.hidden(encoded.final)).chunk(self.layers, dim=-1)  # layers x (batch, hidden)
        if self.cell is None:
            return [(h_l, None) for h_l in h]
        source = encoded.final_cell if encoded.final_cell is not None else encoded.final
        c = torch.tanh(self.cell(source)).chunk(self.layers, dim=-1)
        return list(zip(h, c))
