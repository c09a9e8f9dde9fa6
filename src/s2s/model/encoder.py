"""Recurrent encoder over source token ids."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from s2s.config import ModelConfig
from s2s.model.recurrence import LayerState, join_states, packed_layer
from s2s.subword import PAD_ID


@dataclass
class EncoderOutput:
    """What the decoder reads from the encoder."""

    states: torch.Tensor                # (batch, src_len, enc_dim) top-layer states, 0 at padding
    final: torch.Tensor                 # (batch, enc_dim) last layer's final state, directions concatenated
    final_cell: Optional[torch.Tensor]  # (batch, enc_dim) LSTM final cell state, else None
    mask: torch.Tensor                  # (batch, src_len) bool, True at real tokens


class Encoder(nn.Module):
    """Embedding, dropout and a (bi)directional GRU/LSTM run on packed sequences.

    Packing means padding never enters the recurrence: a padded batch gives
    each sentence the same states as encoding it alone. Training on the CPU
    runs the recurrence as :func:`~s2s.model.recurrence.packed_layer` over
    ``self.rnn``'s parameters (the same function, a backward without the
    torch layer's quadratic gradient fills on the CPU); decoding, and any
    device with its own RNN kernels (cuDNN), run ``self.rnn`` itself, in
    float32 even under autocast (autocast's cuDNN path would copy every weight
    into a new bf16 buffer at each call; ``docs/performance.md`` has the cost).
    """

    def __init__(self, vocab_size: int, config: ModelConfig):
        super().__init__()
        directions = 2 if config.bidirectional else 1
        self.output_dim = config.hidden  # enc_dim: hidden/2 per direction when bidirectional
        self.embed = nn.Embedding(vocab_size, config.emb, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(config.dropout)
        rnn = nn.GRU if config.cell == "gru" else nn.LSTM
        self.rnn = rnn(config.emb, config.hidden // directions, num_layers=config.enc_layers,
                       batch_first=True, bidirectional=config.bidirectional,
                       dropout=config.dropout if config.enc_layers > 1 else 0.0)
        self.directions = directions

    def forward(self, src: torch.Tensor, src_lens: torch.Tensor) -> EncoderOutput:
        """Encode ``src`` (batch, src_len) with true lengths ``src_lens`` (batch,)."""
        embedded = self.dropout(self.embed(src))  # (batch, src_len, emb)
        packed = pack_padded_sequence(embedded, src_lens.cpu(), batch_first=True, enforce_sorted=False)
        if torch.is_grad_enabled() and src.device.type == "cpu":
            packed_out, (hidden, cell) = self._run_packed(packed)
        else:  # float32 even under autocast, whose cuDNN path recasts and copies every weight at each call
            with torch.autocast(src.device.type, enabled=False):
                packed_out, final = self.rnn(packed)
            hidden, cell = final if isinstance(final, tuple) else (final, None)
        states, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=src.size(1))
        return EncoderOutput(states=states, final=self._last_layer(hidden),
                             final_cell=None if cell is None else self._last_layer(cell),
                             mask=src != PAD_ID)

    def _run_packed(self, packed: PackedSequence) -> tuple[PackedSequence, LayerState]:
        """``self.rnn(packed)`` as gate math: the packed states and the final (h, c), each
        (layers*directions, batch, hidden/directions) in the batch's order (``packed`` from
        ``enforce_sorted=False``, which gives ``unsorted_indices``)."""
        rnn = self.rnn
        sizes = packed.batch_sizes.tolist()
        layer_input = packed.data                                   # (positions, emb)
        finals: list[LayerState] = []
        for layer in range(rnn.num_layers):
            if layer:  # as nn.GRU/nn.LSTM: dropout on every layer's output but the last
                layer_input = F.dropout(layer_input, rnn.dropout, rnn.training)
            layer_input = self._layer(layer, layer_input, sizes, finals)  # (positions, hidden)
        unsort = packed.unsorted_indices
        hidden, cell = join_states(finals, torch.stack)
        return (PackedSequence(layer_input, packed.batch_sizes, packed.sorted_indices, unsort),
                (hidden.index_select(1, unsort), None if cell is None else cell.index_select(1, unsort)))

    def _layer(self, layer: int, inputs: torch.Tensor, sizes: list[int], finals: list[LayerState]) -> torch.Tensor:
        """Layer ``layer``'s directions over packed ``inputs`` (positions, in_dim): their states side by
        side (positions, hidden); appends each direction's final state (batch, hidden/directions)
        to ``finals``. Both directions' input projections are one matrix product."""
        rnn, lstm = self.rnn, isinstance(self.rnn, nn.LSTM)
        names = [f"l{layer}{suffix}" for suffix in ["", "_reverse"][:self.directions]]
        weight_ih = torch.cat([getattr(rnn, f"weight_ih_{name}") for name in names])
        bias_ih = torch.cat([getattr(rnn, f"bias_ih_{name}") for name in names])
        gates = F.linear(inputs, weight_ih, bias_ih).chunk(self.directions, dim=1)  # (positions, k*hidden/dirs) each
        outputs = []
        for direction, name in enumerate(names):
            states, final = packed_layer(gates[direction], sizes, getattr(rnn, f"weight_hh_{name}"),
                                         getattr(rnn, f"bias_hh_{name}"), lstm, reverse=direction == 1)
            outputs.append(states)                                  # (positions, hidden/directions)
            finals.append(final)
        return torch.cat(outputs, dim=1)

    def _last_layer(self, state: torch.Tensor) -> torch.Tensor:
        """(layers*directions, batch, dim) -> (batch, directions*dim) of the last layer."""
        last = state[-self.directions:]             # (directions, batch, dim)
        return torch.cat(list(last), dim=-1)        # (batch, directions*dim)
