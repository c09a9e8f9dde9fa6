import pytest
import torch

from s2s.device import resolve_device, resolve_precision, set_threads
from s2s.errors import S2SError


def test_precision_and_device_errors():
    assert resolve_precision("auto", torch.device("cpu")) is None
    assert resolve_precision("bf16", torch.device("cuda")) == torch.bfloat16
    with pytest.raises(S2SError, match="train.precision: bf16 needs a CUDA device"):
        resolve_precision("bf16", torch.device("cpu"))
    if not torch.cuda.is_available():
        with pytest.raises(S2SError, match="train.device: cuda requested"):
            resolve_device("cuda")
        assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(S2SError, match="--device: 'gpu' is not a device; use auto, cpu or cuda"):
        resolve_device("gpu", "--device")


def test_zero_threads_means_every_core(monkeypatch):
    previous = torch.get_num_threads()
    try:
        monkeypatch.setattr("os.cpu_count", lambda: 3)
        set_threads(0)
        assert torch.get_num_threads() == 3
        set_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(previous)
