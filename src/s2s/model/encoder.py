"""Recurrent encoder over source token ids."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from s2s.config import ModelConfig
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
    each sentence the same states as encoding it alone.
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
        packed_out, final = self.rnn(packed)
        states, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=src.size(1))
        hidden, cell = final if isinstance(final, tuple) else (final, None)
        return EncoderOutput(states=states, final=self._last_layer(hidden),
                             final_cell=None if cell is None else self._last_layer(cell),
                             mask=src != PAD_ID)

    def _last_layer(self, state: torch.Tensor) -> torch.Tensor:
        """(layers*directions, batch, dim) -> (batch, directions*dim) of the last layer."""
        last = state[-self.directions:]             # (directions, batch, dim)
        return torch.cat(list(last), dim=-1)        # (batch, directions*dim)
