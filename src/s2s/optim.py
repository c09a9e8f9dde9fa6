"""The optimizer (Adam, fused where torch has the kernel) and the learning-rate schedules."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn
from torch.torch_version import TorchVersion

from s2s.config import TrainConfig


def build_optimizer(model: nn.Module, lr: float) -> torch.optim.Adam:
    """Adam over ``model``'s parameters, fused into one kernel per step where torch has one for
    their device (CUDA; the CPU from torch 2.4): the same update, several times faster than per-tensor ops."""
    device = next(model.parameters()).device
    fused = device.type == "cuda" or (device.type == "cpu" and TorchVersion(torch.__version__) >= (2, 4))
    return torch.optim.Adam(model.parameters(), lr=lr, fused=fused)


def load_optimizer_state(optimizer: torch.optim.Adam, state: dict) -> None:
    """Load a checkpoint's optimizer ``state``, keeping ``optimizer``'s choice of kernel: torch would
    take the checkpoint's ``fused``, which another torch version or device may lack."""
    groups = [{**group, "fused": optimizer.defaults["fused"]} for group in state["param_groups"]]
    optimizer.load_state_dict({**state, "param_groups": groups})


class Schedule:
    """The learning-rate schedule: ``plateau`` (per epoch, on the early-stopping metric),
    ``inverse_sqrt`` (per step, linear warmup then 1/sqrt decay) or ``constant``."""

    def __init__(self, optimizer: torch.optim.Optimizer, config: TrainConfig):
        self.kind = config.lr_schedule
        self.scheduler: Optional[object] = None
        if self.kind == "plateau":
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min" if config.early_stop_metric == "loss" else "max",
                factor=config.lr_decay, patience=config.lr_patience, min_lr=config.min_lr)
        elif self.kind == "inverse_sqrt":
            warmup = config.warmup_steps
            self.scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda step: min((step + 1) / warmup, math.sqrt(warmup / (step + 1))))

    def after_step(self) -> None:
        if self.kind == "inverse_sqrt":
            self.scheduler.step()

    def after_epoch(self, metric: float) -> None:
        if self.kind == "plateau":
            self.scheduler.step(metric)

    def state_dict(self) -> dict:
        return {} if self.scheduler is None else self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state)
