"""Recurrent decoders: Bahdanau attention with input feeding, or Luong / no attention.

Bahdanau (:class:`BahdanauDecoder`): at step ``t``, with ``s_{t-1}`` the
previous top-layer state:

    c_t  = attention(s_{t-1}, encoder states)
    s_t  = RNN([E y_{t-1}; c_t], s_{t-1})                  (stacked layers)
    o_t  = tanh(W_o [s_t; c_t; E y_{t-1}])                 (readout, size emb when tied)
    p_t  = softmax(W_out dropout(o_t))

The recurrence is written as gate math over the parameters of
``nn.GRUCell``/``nn.LSTMCell`` so that the embedding half of the first
layer's input projection is one matrix product over all steps, and the
readout and output layer run once over all steps after the loop.

Teacher forcing reads the target as a ``PackedSequence`` (rows sorted
longest first; ``data`` time-major, ``batch_sizes`` the rows still running
at each step) and returns the readout of real positions only, in the same
order: a step runs only the rows whose sentence has not ended, and attends
only over the source positions those rows have, so padding costs nothing
in the loop or in the output layer after it.

Luong and none (:class:`ParallelDecoder`): the RNN reads only the target
history (with the fixed final encoder state as context for ``none``), so
teacher forcing runs it over all steps in one ``nn.GRU``/``nn.LSTM`` call;
Luong attention then attends from every ``s_t`` at once, and the readout is
``tanh(W_o [s_t; c_t; E y_{t-1}])`` as above.
"""

from __future__ import annotations

from typing import Callable, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from s2s.config import ModelConfig
from s2s.model.attention import BahdanauAttention, LuongAttention
from s2s.model.encoder import EncoderOutput
from s2s.model.gemm import Linear, linear
from s2s.model.recurrence import LayerState, recurrent_step
from s2s.model.state import Bridge, DecoderState, Memory, readout_size
from s2s.subword import PAD_ID


def packed_steps(steps: PackedSequence, memory: Memory) -> list[tuple[int, int]]:
    """(rows, source length) of each step of ``steps``, whose rows are sorted longest first.

    The source length is the longest source among the rows still running,
    so a step's attention covers every real position of its rows.
    """
    rows = steps.batch_sizes.tolist()
    longest_src = memory.mask.sum(dim=1).cummax(dim=0).values.tolist()  # (batch,) over the first rows
    return [(n, longest_src[n - 1]) for n in rows]


def cell_step(cell: nn.Module, input_gates: torch.Tensor, state: LayerState) -> LayerState:
    """One step of ``nn.GRUCell``/``nn.LSTMCell`` ``cell`` from precomputed ``input_gates`` (batch, k*hidden)."""
    return recurrent_step(input_gates, state, cell.weight_hh, cell.bias_hh, isinstance(cell, nn.LSTMCell))


class StepwiseDecoder(nn.Module):
    """What the step-by-step decoders share: embedding, attention, stacked cells, bridge.

    The first layer reads ``[E y_{t-1}; feed_t]`` (Bahdanau: the context;
    input feeding: the previous attentional vector). In teacher forcing the
    embedding half of its input projection is one matrix product over all
    steps and the ``feed`` half is applied at each step; a decoding step,
    which has one embedding per row, applies the whole projection to the
    concatenation in one product (:meth:`_input_gates`). Submodules are
    created in the order embedding, attention, cells, bridge, then the
    subclass's output layers, so that a seed gives the same initial weights
    as ever.
    """

    def __init__(self, vocab_size: int, enc_dim: int, config: ModelConfig, feed_dim: int):
        super().__init__()
        self.emb_dim, self.hidden = config.emb, config.hidden
        self.embed = nn.Embedding(vocab_size, config.emb, padding_idx=PAD_ID)
        self.dropout_p = config.dropout
        self.attention = self._make_attention(enc_dim, config)
        cell = nn.LSTMCell if config.cell == "lstm" else nn.GRUCell
        self.cells = nn.ModuleList(
            [cell(config.emb + feed_dim, config.hidden)]
            + [cell(config.hidden, config.hidden) for _ in range(config.dec_layers - 1)])
        self.bridge = Bridge(enc_dim, config.hidden, config.dec_layers, config.cell == "lstm")
        self.output_dim = readout_size(config)

    def _make_attention(self, enc_dim: int, config: ModelConfig) -> nn.Module:
        raise NotImplementedError

    def memory(self, encoded: EncoderOutput) -> Memory:
        return Memory(encoded.states, self.attention.project_keys(encoded.states), encoded.mask)

    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids (…) -> dropped-out embeddings (…, emb)."""
        return F.dropout(self.embed(tokens), self.dropout_p, self.training)

    def _embed_gates(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings (…, emb) and their share of the first layer's input gates (…, k*hidden)."""
        embedded = self._embed(tokens)
        first = self.cells[0]
        gates = linear(embedded, first.weight_ih[:, :self.emb_dim], first.bias_ih)
        return embedded, gates

    def _input_gates(self, embedded: torch.Tensor, feed: torch.Tensor) -> torch.Tensor:
        """The first layer's input gates (batch, k*hidden) from ``embedded`` (batch, emb) and ``feed``
        (batch, feed_dim): one product with the whole, contiguous input weight, which decoding runs
        on oneDNN (:mod:`s2s.model.gemm`), where its column slices would fall back to MKL."""
        first = self.cells[0]
        return linear(torch.cat([embedded, feed], dim=-1), first.weight_ih, first.bias_ih)

    def _feed_weight(self) -> torch.Tensor:
        """The feed half of the first layer's input weight (k*hidden, feed_dim).

        Sliced once per batch, not per step: the backward of each slice would
        zero-fill a gradient of the whole weight.
        """
        return self.cells[0].weight_ih[:, self.emb_dim:]

    def _unroll(self, steps: PackedSequence, encoded: EncoderOutput, emb_gates: torch.Tensor,
                step: Callable[[torch.Tensor, DecoderState, Memory], tuple[DecoderState, tuple[torch.Tensor, ...]]]
                ) -> tuple[torch.Tensor, ...]:
        """Teacher forcing: run ``step(gates, state, memory) -> (state, outputs)`` over the packed ``steps``.

        ``emb_gates`` (positions, k*hidden) in ``steps.data``'s order. Each step
        sees the rows still running and the source positions they have; each
        of its outputs (rows, dim) is concatenated over the steps (positions, dim).
        """
        full = memory = self.memory(encoded)
        state = self.init_state(encoded)
        schedule = packed_steps(steps, full)
        collected = []
        # split, not indexing: the backward of one split is one cat, where each indexing
        # would zero-fill and add a gradient of the whole tensor at every step.
        for (rows, src_len), step_gates in zip(schedule, emb_gates.split([n for n, _ in schedule])):
            if rows < state.layers[0][0].size(0):
                state = state.prefix(rows)
            if (rows, src_len) != tuple(memory.mask.shape):
                memory = full.prefix(rows, src_len)
            state, outputs = step(step_gates, state, memory)
            collected.append(outputs)
        return tuple(torch.cat(parts) for parts in zip(*collected))

    def _run_layers(self, first_gates: torch.Tensor, layers: list[LayerState]) -> list[LayerState]:
        """One step of every layer from the first layer's input gates (batch, k*hidden)."""
        new_layers = [cell_step(self.cells[0], first_gates, layers[0])]
        for cell, layer_state in zip(self.cells[1:], layers[1:]):
            below = F.dropout(new_layers[-1][0], self.dropout_p, self.training)
            new_layers.append(cell_step(cell, linear(below, cell.weight_ih, cell.bias_ih), layer_state))
        return new_layers


class BahdanauDecoder(StepwiseDecoder):
    """Stacked GRU/LSTM decoder with Bahdanau attention and input feeding of the context."""

    def __init__(self, vocab_size: int, enc_dim: int, config: ModelConfig):
        super().__init__(vocab_size, enc_dim, config, feed_dim=enc_dim)
        self.readout = Linear(config.hidden + enc_dim + config.emb, self.output_dim)

    def _make_attention(self, enc_dim: int, config: ModelConfig) -> nn.Module:
        return BahdanauAttention(config.hidden, enc_dim, config.hidden)

    def init_state(self, encoded: EncoderOutput) -> DecoderState:
        return DecoderState(self.bridge(encoded))

    def _step(self, input_gates: Callable[[torch.Tensor], torch.Tensor], state: DecoderState,
              memory: Memory) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """Attend from the previous state, then run every layer one step.

        ``input_gates`` maps the context (batch, enc_dim) to the first layer's
        input gates (batch, k*hidden). Returns the context, the new state and
        the attention weights (batch, src_len).
        """
        context, weights = self.attention(state.layers[-1][0], memory.keys, memory.values, memory.mask)
        layers = self._run_layers(input_gates(context), state.layers)
        return context, DecoderState(layers), weights

    def _readout(self, top: torch.Tensor, context: torch.Tensor, embedded: torch.Tensor) -> torch.Tensor:
        """(…, hidden), (…, enc_dim), (…, emb) -> dropout(tanh(W_o [s; c; e])) (…, output_dim)."""
        out = torch.tanh(self.readout(torch.cat([top, context, embedded], dim=-1)))
        return F.dropout(out, self.dropout_p, self.training)

    def forward(self, steps: PackedSequence, encoded: EncoderOutput) -> torch.Tensor:
        """Teacher-forced decoding of the packed target inputs ``steps`` (rows sorted longest first).

        Returns the readout of every real position (positions, output_dim), in ``steps.data``'s order.
        """
        embedded, emb_gates = self._embed_gates(steps.data)  # (positions, emb), (positions, k*hidden)
        context_weight = self._feed_weight()

        def step(gates: torch.Tensor, state: DecoderState, memory: Memory):
            context, state, _ = self._step(lambda context: gates + linear(context, context_weight), state, memory)
            return state, (state.layers[-1][0], context)    # (rows, hidden), (rows, enc_dim)

        top, context = self._unroll(steps, encoded, emb_gates, step)
        return self._readout(top, context, embedded)

    def step(self, tokens: torch.Tensor, state: DecoderState,
             memory: Memory) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """One decoding step from the previous tokens (batch,).

        Returns the readout (batch, output_dim), the new state and the
        attention weights (batch, src_len).
        """
        embedded = self._embed(tokens)  # (batch, emb)
        context, state, weights = self._step(lambda context: self._input_gates(embedded, context), state, memory)
        return self._readout(state.layers[-1][0], context, embedded), state, weights


class InputFeedingDecoder(StepwiseDecoder):
    """Luong attention with input feeding (Luong et al., 2015); Joey NMT's recurrent decoder.

    At step ``t``, with ``a_{t-1}`` the previous attentional vector (``a_0 = 0``):

        s_t = RNN(dropout([E y_{t-1}; a_{t-1}]), s_{t-1})      (stacked layers)
        c_t = attention(s_t, encoder states)                   (additive, general or dot score)
        a_t = tanh(W_c dropout([s_t; c_t]))                    (size hidden, emb when tied)
        p_t = softmax(W_out a_t)

    The attention reads the new state, and ``a_t`` feeds the next step, so the
    steps run one at a time; the output layer still runs once after the loop.
    """

    def __init__(self, vocab_size: int, enc_dim: int, config: ModelConfig):
        super().__init__(vocab_size, enc_dim, config, feed_dim=readout_size(config))
        self.combine = Linear(config.hidden + enc_dim, self.output_dim)

    def _make_attention(self, enc_dim: int, config: ModelConfig) -> nn.Module:
        if config.attention_score == "additive":
            return BahdanauAttention(config.hidden, enc_dim, config.hidden)
        return LuongAttention(config.hidden, enc_dim, config.attention_score)

    def init_state(self, encoded: EncoderOutput) -> DecoderState:
        layers = self.bridge(encoded)
        return DecoderState(layers, layers[0][0].new_zeros(layers[0][0].size(0), self.output_dim))

    def _attend(self, query: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        """Context (batch, enc_dim) and weights (batch, src_len) for one query (batch, hidden)."""
        if isinstance(self.attention, BahdanauAttention):
            return self.attention(query, memory.keys, memory.values, memory.mask)
        context, weights = self.attention(query.unsqueeze(1), memory.keys, memory.values, memory.mask)
        return context.squeeze(1), weights.squeeze(1)

    def _step(self, input_gates: Callable[[torch.Tensor], torch.Tensor], state: DecoderState,
              memory: Memory) -> tuple[DecoderState, torch.Tensor]:
        """Run every layer one step, then attend from the top.

        ``input_gates`` maps the (dropped-out) previous attentional vector
        (batch, output_dim) to the first layer's input gates (batch, k*hidden).
        Returns the new state (its ``feed`` is the new attentional vector) and
        the attention weights (batch, src_len).
        """
        feed = F.dropout(state.feed, self.dropout_p, self.training)
        layers = self._run_layers(input_gates(feed), state.layers)
        top = layers[-1][0]                                                # (batch, hidden)
        context, weights = self._attend(top, memory)
        combined = F.dropout(torch.cat([top, context], dim=-1), self.dropout_p, self.training)
        return DecoderState(layers, torch.tanh(self.combine(combined))), weights

    def forward(self, steps: PackedSequence, encoded: EncoderOutput) -> torch.Tensor:
        """Teacher-forced decoding of the packed target inputs ``steps`` (rows sorted longest first):
        the attentional vector of every real position (positions, output_dim), in ``steps.data``'s order."""
        _, emb_gates = self._embed_gates(steps.data)     # (positions, k*hidden)
        feed_weight = self._feed_weight()

        def step(gates: torch.Tensor, state: DecoderState, memory: Memory):
            state, _ = self._step(lambda feed: gates + linear(feed, feed_weight), state, memory)
            return state, (state.feed,)                  # (rows, output_dim)

        (vectors,) = self._unroll(steps, encoded, emb_gates, step)
        return vectors

    def step(self, tokens: torch.Tensor, state: DecoderState,
             memory: Memory) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """One step from tokens (batch,): attentional vector (batch, output_dim), state, weights (batch, src_len)."""
        embedded = self._embed(tokens)  # (batch, emb)
        state, weights = self._step(lambda feed: self._input_gates(embedded, feed), state, memory)
        return state.feed, state, weights


class ParallelDecoder(nn.Module):
    """GRU/LSTM decoder with Luong attention after the RNN, or no attention (``none``).

    With ``none`` the context is the final encoder state at every step, fed
    to the RNN and to the readout (the classic encoder-decoder); the memory's
    ``values`` and ``keys`` then hold it as (batch, 1, enc_dim).
    """

    def __init__(self, vocab_size: int, enc_dim: int, config: ModelConfig):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, config.emb, padding_idx=PAD_ID)
        self.dropout_p = config.dropout
        self.is_lstm = config.cell == "lstm"
        self.attention = (LuongAttention(config.hidden, enc_dim, config.attention_score)
                          if config.attention == "luong" else None)
        rnn = nn.LSTM if self.is_lstm else nn.GRU
        rnn_input = config.emb if self.attention is not None else config.emb + enc_dim
        self.rnn = rnn(rnn_input, config.hidden, num_layers=config.dec_layers, batch_first=True,
                       dropout=config.dropout if config.dec_layers > 1 else 0.0)
        self.bridge = Bridge(enc_dim, config.hidden, config.dec_layers, self.is_lstm)
        self.output_dim = readout_size(config)
        self.readout = Linear(config.hidden + enc_dim + config.emb, self.output_dim)

    def memory(self, encoded: EncoderOutput) -> Memory:
        if self.attention is None:
            fixed = encoded.final.unsqueeze(1)  # (batch, 1, enc_dim)
            return Memory(fixed, fixed, torch.ones_like(encoded.mask[:, :1]))
        return Memory(encoded.states, self.attention.project_keys(encoded.states), encoded.mask)

    def init_state(self, encoded: EncoderOutput) -> DecoderState:
        return DecoderState(self.bridge(encoded))

    def _run(self, embedded: torch.Tensor, state: DecoderState, memory: Memory
             ) -> tuple[torch.Tensor, DecoderState, "torch.Tensor | None"]:
        """Run the RNN over ``embedded`` (batch, steps, emb) and attend from every step.

        Returns readouts (batch, steps, output_dim), the final state, and the
        attention weights (batch, steps, src_len), or None without attention.
        """
        steps = embedded.size(1)
        if self.attention is None:
            context = memory.values.expand(-1, steps, -1)             # (batch, steps, enc_dim)
            inputs = torch.cat([embedded, context], dim=-1)
        else:
            inputs = embedded
        h0 = torch.stack([h for h, _ in state.layers])                 # (layers, batch, hidden)
        hx = (h0, torch.stack([c for _, c in state.layers])) if self.is_lstm else h0
        top, final = self.rnn(inputs, hx)                              # (batch, steps, hidden)
        h_n, c_n = final if self.is_lstm else (final, None)
        new_state = DecoderState([(h_n[i], None if c_n is None else c_n[i]) for i in range(h_n.size(0))])
        weights = None
        if self.attention is not None:
            context, weights = self.attention(top, memory.keys, memory.values, memory.mask)
        out = torch.tanh(self.readout(torch.cat([top, context, embedded], dim=-1)))
        return F.dropout(out, self.dropout_p, self.training), new_state, weights

    def forward(self, steps: PackedSequence, encoded: EncoderOutput) -> torch.Tensor:
        """Teacher-forced decoding of the packed target inputs ``steps`` (rows sorted longest first):
        the readout of every real position (positions, output_dim), in ``steps.data``'s order.

        The RNN and attention run on the padded batch (one call each); only
        real positions reach the output layer.
        """
        tgt_in, lengths = pad_packed_sequence(steps, batch_first=True, padding_value=PAD_ID)  # (batch, tgt_len)
        embedded = F.dropout(self.embed(tgt_in), self.dropout_p, self.training)
        readout, _, _ = self._run(embedded, self.init_state(encoded), self.memory(encoded))
        return pack_padded_sequence(readout, lengths, batch_first=True).data

    def step(self, tokens: torch.Tensor, state: DecoderState,
             memory: Memory) -> tuple[torch.Tensor, DecoderState, "torch.Tensor | None"]:
        """One step from tokens (batch,): readout (batch, output_dim), state, weights (batch, src_len) or None."""
        embedded = F.dropout(self.embed(tokens), self.dropout_p, self.training).unsqueeze(1)
        readout, state, weights = self._run(embedded, state, memory)
        return readout.squeeze(1), state, None if weights is None else weights.squeeze(1)


Decoder = Union[BahdanauDecoder, InputFeedingDecoder, ParallelDecoder]


def build_decoder(vocab_size: int, enc_dim: int, config: ModelConfig) -> Decoder:
    """The decoder that ``config.attention`` names."""
    if config.attention == "bahdanau":
        return BahdanauDecoder(vocab_size, enc_dim, config)
    if config.input_feeding:
        return InputFeedingDecoder(vocab_size, enc_dim, config)
    return ParallelDecoder(vocab_size, enc_dim, config)
