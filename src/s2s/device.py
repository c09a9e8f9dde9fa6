"""Where and how the model runs: device, autocast precision, CPU threads."""

from __future__ import annotations

import logging
import os
from typing import Optional

import torch

from s2s.errors import S2SError

log = logging.getLogger(__name__)


def resolve_device(name: str, setting: str = "train.device") -> torch.device:
    """``auto`` picks CUDA when present and says so when it falls back to the CPU.

    ``setting`` names where ``name`` came from (a param or a command-line flag) in errors.
    """
    if name not in ("auto", "cpu", "cuda"):
        raise S2SError(f"{setting}: {name!r} is not a device; use auto, cpu or cuda")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        log.info("device: auto -> cpu (no CUDA device found)")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise S2SError(f"{setting}: cuda requested but no CUDA device is available; "
                       f"set {setting} to auto or cpu")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype: bf16 on CUDA for ``auto``/``bf16``, none (fp32) otherwise."""
    if name == "bf16" and device.type != "cuda":
        raise S2SError("train.precision: bf16 needs a CUDA device; use auto or fp32 on the CPU")
    if name == "fp32" or device.type != "cuda":
        return None
    return torch.bfloat16


def set_threads(threads: int) -> None:
    """Use ``threads`` torch threads on the CPU (0 = every core)."""
    torch.set_num_threads(threads or os.cpu_count() or 1)
