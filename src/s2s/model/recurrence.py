"""GRU and LSTM recurrences written as gate math: one step, and one layer over a packed sequence.

``nn.GRU``/``nn.LSTM`` on the CPU take each step's rows of a packed input
by slicing the input-gate tensor, and the backward of every slice fills and
adds a gradient of the whole (positions, k*hidden) tensor: quadratic in the
sentence length (``docs/performance.md`` has its share of the encoder's
time). :func:`packed_layer` splits the gates once instead, whose backward is
one concatenation, and computes exactly what the torch layers compute.
On CUDA tensors :func:`recurrent_step` runs the same math as the fused kernels
of ``nn.GRUCell``/``nn.LSTMCell``.
"""

from __future__ import annotations

from typing import Callable

import torch

from s2s.model.gemm import linear

# One layer's state: (h, c) for an LSTM, (h, None) for a GRU; each (batch, hidden).
LayerState = tuple[torch.Tensor, "torch.Tensor | None"]


def recurrent_step(input_gates: torch.Tensor, state: LayerState, weight_hh: torch.Tensor,
                   bias_hh: torch.Tensor, lstm: bool) -> LayerState:
    """One GRU/LSTM step from precomputed ``input_gates = W_ih x + b_ih`` (batch, k*hidden).

    ``state`` holds h (batch, hidden) and, for an LSTM, c (batch, hidden);
    ``weight_hh`` (k*hidden, hidden). Computes what ``nn.GRUCell``/``nn.LSTMCell`` compute.
    """
    h, c = state
    hidden_gates = linear(h, weight_hh, bias_hh)  # (batch, k*hidden)
    if input_gates.is_cuda:  # one fused kernel forward and one backward, where the gate math is ~10 each
        return _fused_cuda_step(input_gates, hidden_gates, h, c, lstm)
    if lstm:
        i, f, g, o = (input_gates + hidden_gates).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
    i_r, i_z, i_n = input_gates.chunk(3, dim=1)
    h_r, h_z, h_n = hidden_gates.chunk(3, dim=1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return n + z * (h - n), None


def _fused_cuda_step(input_gates: torch.Tensor, hidden_gates: torch.Tensor, h: torch.Tensor,
                     c: "torch.Tensor | None", lstm: bool) -> LayerState:
    """The gate math of :func:`recurrent_step` as the fused CUDA kernels behind ``nn.GRUCell`` and
    ``nn.LSTMCell`` (biases already in the gates): one kernel each way where the gate math launches
    about ten. On an H100 that cut a default training update's kernels by a fifth (1,663 -> 1,349;
    benchmarks/gpu/README.md). Gates (batch, k*hidden); h and c (batch, hidden)."""
    dtype = hidden_gates.dtype  # under autocast the gates are bf16; the kernels take one dtype
    if lstm:
        h, c, _ = torch.ops.aten._thnn_fused_lstm_cell(input_gates.to(dtype), hidden_gates, c.to(dtype))
        return h, c
    h, _ = torch.ops.aten._thnn_fused_gru_cell(input_gates.to(dtype), hidden_gates, h.to(dtype))
    return h, None


def packed_layer(input_gates: torch.Tensor, batch_sizes: list[int], weight_hh: torch.Tensor,
                 bias_hh: torch.Tensor, lstm: bool, reverse: bool) -> tuple[torch.Tensor, LayerState]:
    """One direction of one layer over a packed sequence, from zero initial states.

    ``input_gates`` (positions, k*hidden) in packed order (time-major, rows
    sorted longest first, ``batch_sizes[t]`` rows at step t); ``weight_hh``
    (k*hidden, hidden), ``bias_hh`` (k*hidden,). ``reverse``
    reads each row from its last position to its first. Returns the states
    (positions, hidden) in the same order and each row's final state
    (rows, hidden), as ``nn.GRU``/``nn.LSTM`` on the ``PackedSequence``.
    """
    hidden = weight_hh.size(1)
    steps = input_gates.split(batch_sizes)  # the backward of one split is one cat
    start = batch_sizes[-1] if reverse else batch_sizes[0]
    h = input_gates.new_zeros(start, hidden)
    state: LayerState = (h, h.clone() if lstm else None)
    outputs: list["torch.Tensor | None"] = [None] * len(steps)
    ended: list[LayerState] = []  # final states of rows that end early (forward), highest rows first
    for t in (reversed(range(len(steps))) if reverse else range(len(steps))):
        rows, running = batch_sizes[t], state[0].size(0)
        if rows < running:    # forward: rows rows.. have read their last position
            ended.append(_rows(state, rows, running))
            state = _rows(state, 0, rows)
        elif rows > running:  # reverse: rows running.. start at their last position
            state = _with_zero_rows(state, rows - running)
        state = recurrent_step(steps[t], state, weight_hh, bias_hh, lstm)
        outputs[t] = state[0]
    return torch.cat(outputs), join_states([state] + ended[::-1], torch.cat)


def join_states(states: list[LayerState], join: Callable[[list[torch.Tensor]], torch.Tensor]) -> LayerState:
    """The h of ``states`` joined by ``join`` (``torch.cat``, ``torch.stack``), and their c alike (None for a GRU)."""
    cells = [c for _, c in states]
    return join([h for h, _ in states]), None if cells[0] is None else join(cells)


def _rows(state: LayerState, start: int, stop: int) -> LayerState:
    """Rows ``start`` up to (not including) ``stop`` of h and c."""
    h, c = state
    return h[start:stop], None if c is None else c[start:stop]


def _with_zero_rows(state: LayerState, extra: int) -> LayerState:
    """h and c with ``extra`` zero rows appended: rows whose recurrence starts now."""
    h, c = state
    zeros = h.new_zeros(extra, h.size(1))
    return torch.cat([h, zeros]), None if c is None else torch.cat([c, zeros])
