"""The peer architecture's weights in both systems' terms, and the check that they compute one function.

Joey NMT's recurrent decoder with ``attention: bahdanau`` and ``input_feeding: true`` is s2s's Luong
decoder with input feeding and the additive score (``PEER_MODEL``): the attention reads the new state
and the attentional vector tanh(W [s_t; c_t]) feeds the next step. The two models then hold the same
tensors under other names, with two differences:

- vocabulary-indexed rows: SentencePiece (s2s) has pad 0 / unk 1, Joey unk 0 / pad 1, the rest agree;
- s2s's output layer has a bias, Joey's has none (zero when Joey's weights go to s2s; kept apart as
  ``output_bias`` when s2s's go to Joey, whose side then makes its output layer a biased one).
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from torch import nn

from s2s.tensors import ParallelData, collate, pack

# s2s's model params of the architecture of issue 6 (Joey's side is joey.yaml.tmpl); `init: uniform`
# draws from the scheme Joey's config has.
PEER_MODEL = {"cell": "gru", "attention": "luong", "attention_score": "additive", "input_feeding": True,
              "emb": 256, "hidden": 512, "enc_layers": 1, "dec_layers": 1, "bidirectional": True,
              "dropout": 0.3, "tie_embeddings": False, "init": "uniform"}

# Joey's parameter names -> s2s's (encoder.rnn.* are named alike); s2s's output bias has no twin.
JOEY_TO_S2S = {"src_embed.lut.weight": "encoder.embed.weight", "trg_embed.lut.weight": "decoder.embed.weight",
               "decoder.rnn.weight_ih_l0": "decoder.cells.0.weight_ih",
               "decoder.rnn.weight_hh_l0": "decoder.cells.0.weight_hh",
               "decoder.rnn.bias_ih_l0": "decoder.cells.0.bias_ih", "decoder.rnn.bias_hh_l0": "decoder.cells.0.bias_hh",
               "decoder.att_vector_layer.weight": "decoder.combine.weight",
               "decoder.att_vector_layer.bias": "decoder.combine.bias", "decoder.output_layer.weight": "output.weight",
               "decoder.attention.key_layer.weight": "decoder.attention.key_proj.weight",
               "decoder.attention.query_layer.weight": "decoder.attention.query_proj.weight",
               "decoder.attention.energy_layer.weight": "decoder.attention.energy.weight",
               "decoder.bridge_layer.weight": "decoder.bridge.hidden.weight",
               "decoder.bridge_layer.bias": "decoder.bridge.hidden.bias"}
S2S_TO_JOEY = {s2s_name: joey_name for joey_name, s2s_name in JOEY_TO_S2S.items()}
VOCAB_ROWS = {"src_embed.lut.weight", "trg_embed.lut.weight", "decoder.output_layer.weight"}  # Joey's names


def swap_pad_unk(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` (vocab, ...) with rows 0 and 1 exchanged: SentencePiece's order to Joey's and back."""
    return tensor[[1, 0, *range(2, tensor.size(0))]]


def s2s_state_from_joey(joey_state: dict, model: nn.Module) -> dict:
    """Joey's weights as an s2s state dict for ``model``: rows of vocabulary-indexed weights reordered
    (Joey's unk 0 / pad 1 are SentencePiece's 1 / 0), the output bias (Joey has none) zero. Stops when
    a parameter of either system has no counterpart in the other."""
    state = {}
    for name, tensor in joey_state.items():
        if name in VOCAB_ROWS:
            tensor = swap_pad_unk(tensor)
        state[JOEY_TO_S2S.get(name, name)] = tensor.clone()
    state["output.bias"] = torch.zeros_like(model.output.bias)
    missing = set(model.state_dict()) ^ set(state)
    if missing:
        sys.exit(f"FAIL: parameters without a counterpart in the other system: {sorted(missing)}")
    return state


def joey_state_from_s2s(model: nn.Module) -> dict:
    """s2s's weights for Joey (the inverse of :func:`s2s_state_from_joey`): ``{"state_dict": Joey's
    names and row order, "output_bias": s2s's output bias in Joey's row order}``."""
    state = {}
    for name, tensor in model.state_dict().items():
        if name == "output.bias":
            continue
        joey_name = S2S_TO_JOEY.get(name, name)
        state[joey_name] = (swap_pad_unk(tensor) if joey_name in VOCAB_ROWS else tensor).clone()
    return {"state_dict": state, "output_bias": swap_pad_unk(model.output.bias.detach()).clone()}


def function_gap(model: nn.Module, probe: dict) -> float:
    """Largest |log p_s2s - log p_Joey| over the reference tokens of the probe pairs (eval mode),
    with ``model`` holding Joey's weights: 0 up to float rounding when the two compute one function.

    ``probe`` is what ``joey_side.py --dump-init`` wrote: ``pairs``, a list of (source ids, target
    ids) in SentencePiece's ids, and ``log_probs``, Joey's log-probability of each target token and EOS.
    """
    pairs = probe["pairs"]
    src_ids, src_offsets = pack([s for s, _ in pairs])
    tgt_ids, tgt_offsets = pack([t for _, t in pairs])
    data = ParallelData({"src": src_ids, "src_offsets": src_offsets, "tgt": tgt_ids, "tgt_offsets": tgt_offsets})
    batch = collate(data, np.arange(len(pairs)))
    model.eval()
    with torch.no_grad():
        log_probs = -model.token_losses(batch.src, batch.src_lens, batch.tgt_in, batch.tgt_out)
    model.train()
    return max(float((log_probs[row, :len(ref)] - torch.tensor(ref)).abs().max())
               for row, ref in enumerate(probe["log_probs"]))
