"""Checkpoint averaging: the element-wise mean of the weights of the last epochs.

Training keeps the weights at the last ``train.average_last`` validations (the
ends of epochs, or every ``train.valid_every`` updates; in the resume checkpoint
too), scores their mean on the valid set like a validation, and writes the mean
as the model when it beats the best validation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Average:
    """The mean of the weights at the last validations (epochs ``first_epoch..last_epoch``, updates
    ``first_step..last_step``), scored on valid."""

    first_epoch: int
    last_epoch: int
    first_step: int
    last_step: int
    valid_loss: float
    valid_bleu: float
    chosen: bool  # better than the best epoch on train.early_stop_metric: it is models/model.pt


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of ``model.state_dict()``; tied weights stay one tensor (saved once)."""
    copies: dict[tuple, torch.Tensor] = {}
    state = {}
    for key, value in model.state_dict().items():
        identity = (value.data_ptr(), value.shape, value.stride(), value.dtype)
        if identity not in copies:
            copies[identity] = value.detach().to("cpu", copy=True)
        state[key] = copies[identity]
    return state


def keep_recent(recent: list[dict], state: dict, k: int) -> list[dict]:
    """The last ``k`` items (states, or where they were taken) after adding ``state`` (oldest first)."""
    return (recent + [state])[-k:]


def average_states(states: list[dict]) -> dict[str, torch.Tensor]:
    """The element-wise mean of state dicts (summed in float64, in order: deterministic).

    Tensors that are not floating point (counters, ids) are taken from the last state.
    """
    averaged = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            total = torch.zeros_like(last, dtype=torch.float64)
            for state in states:
                total += state[key].double()
            averaged[key] = (total / len(states)).to(last.dtype)
        else:
            averaged[key] = last.clone()
    return averaged
