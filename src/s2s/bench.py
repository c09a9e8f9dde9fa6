"""Speed benchmark: training tokens/s, decoding sentences/s, memory, FLOPs and the device's limit.

Everything is measured in one process on the real tensorized data, so the
figures can be compared as ratios: model FLOP/s over the device's measured
matrix-product FLOP/s gives the fraction of the limit reached.
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from s2s.config import Params
from s2s.device import resolve_precision
from s2s.model import Seq2Seq
from s2s.optim import build_optimizer
from s2s.search import LengthLimit
from s2s.subword import Vocabs
from s2s.tensors import ParallelData, collate
from s2s.train import build_model, epoch_updates, optimizer_step, update_batches
from s2s.translator import Translator


@dataclass
class DecodeSpeed:
    batch_size: int
    beam: int
    sentences: int
    sentences_per_s: float
    tgt_tokens_per_s: float


@dataclass
class BenchResult:
    device: str
    threads: int
    params: int
    train_tgt_tokens_per_s: float
    train_tgt_tokens_per_update: float  # real target tokens of one update (train.accumulate batches)
    train_padding_fraction: float
    train_flops_per_tgt_token: float
    matmul_flops_per_s: float
    train_fraction_of_matmul_limit: float
    peak_memory_mb: float
    decode: list[DecodeSpeed] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def matmul_flops_per_s(device: torch.device, size: Optional[int] = None, repeats: int = 10) -> float:
    """The device's float32 (bf16 on CUDA) matrix-product rate, measured on ``size`` x ``size``
    matrices: 2048 on the CPU, 8192 on CUDA (smaller products leave a large GPU part idle)."""
    cuda = device.type == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32
    size = size or (8192 if cuda else 2048)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    _sync(device)
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * size ** 3 * repeats / (time.perf_counter() - started)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss_kb / 1024 if sys.platform != "darwin" else rss_kb / 2 ** 20


def train_flops_per_token(model: Seq2Seq, data: ParallelData, indices: np.ndarray, device: torch.device) -> float:
    """FLOPs of one forward + backward pass, counted by PyTorch, per real target token."""
    batch = collate(data, indices).to(device)
    with FlopCounterMode(display=False) as counter:
        loss = model.token_losses(batch.src, batch.src_lens, batch.tgt_in, batch.tgt_out).sum()
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / batch.n_tgt_tokens


def bench(params: Params, train_data: ParallelData, test_data: ParallelData, vocabs: Vocabs,
          device: torch.device, model: Optional[Seq2Seq] = None, warmup_steps: int = 5, steps: int = 30,
          decode_sentences: int = 1000, batch1_sentences: int = 100) -> BenchResult:
    """Measure training at steady state and decoding at batch ``eval.batch_size`` and 1.

    A training step is one update, of ``train.accumulate`` batches as in ``s2s train``.
    """
    torch.manual_seed(params.train.seed)
    trained = model
    model = build_model(params.model, vocabs).to(device)
    optimizer = build_optimizer(model, params.train.lr)
    dtype = resolve_precision(params.train.precision, device)
    updates = epoch_updates(train_data, params.train, epoch=1)
    needed = warmup_steps + steps
    groups = (updates * (1 + needed // len(updates)))[:needed]
    flops = train_flops_per_token(model, train_data, groups[0][0], device)
    model.train()
    tokens, padded, seconds = 0, 0, 0.0
    for i, group in enumerate(groups):
        _sync(device)
        started = time.perf_counter()
        _, n_tokens, _ = optimizer_step(model, optimizer, update_batches(train_data, group), params.train,
                                        device, dtype)
        _sync(device)
        if i >= warmup_steps:
            seconds += time.perf_counter() - started
            tokens += n_tokens
            padded += sum(len(indices) * int(train_data.tgt_lens[indices].max() + 1) for indices in group)
    peak = _peak_memory_mb(device)
    limit = matmul_flops_per_s(device)
    rate = tokens / seconds
    decoder_model = (trained or model).eval()
    result = BenchResult(device=str(device), threads=torch.get_num_threads(), params=model.num_parameters(),
                         train_tgt_tokens_per_s=rate, train_tgt_tokens_per_update=tokens / steps,
                         train_padding_fraction=1 - tokens / padded,
                         train_flops_per_tgt_token=flops, matmul_flops_per_s=limit,
                         train_fraction_of_matmul_limit=rate * flops / limit, peak_memory_mb=peak)
    limit_len = LengthLimit.from_eval(params.eval)
    for batch_size, n in ((params.eval.batch_size, decode_sentences), (1, batch1_sentences)):
        sources = [test_data.src(i) for i in range(min(n, len(test_data)))]
        for beam in (1, 5):
            translator = Translator(decoder_model, vocabs, limit_len, batch_size, beam=beam,
                                    len_penalty=params.eval.len_penalty)
            _sync(device)
            started = time.perf_counter()
            hyps = translator.translate_ids(sources)
            _sync(device)
            elapsed = time.perf_counter() - started
            out_tokens = sum(len(t) + 1 for t in hyps.tokens)
            result.decode.append(DecodeSpeed(batch_size, beam, len(sources), len(sources) / elapsed,
                                             out_tokens / elapsed))
    return result


def format_table(result: BenchResult) -> str:
    """The benchmark as a plain-text table."""
    lines = [f"device {result.device} ({result.threads} threads), {result.params:,} parameters",
             f"training: {result.train_tgt_tokens_per_s:,.0f} target tokens/s "
             f"({result.train_tgt_tokens_per_update:,.0f} per update), "
             f"{result.train_padding_fraction:.1%} padding, peak memory {result.peak_memory_mb:,.0f} MB",
             f"  {result.train_flops_per_tgt_token / 1e6:.1f} MFLOP per target token (forward + backward), "
             f"device matmul {result.matmul_flops_per_s / 1e9:,.1f} GFLOP/s -> "
             f"{result.train_fraction_of_matmul_limit:.1%} of the limit",
             "decoding (test set):",
             f"  {'batch':>5} {'beam':>4} {'sentences':>9} {'sent/s':>9} {'tokens/s':>9}"]
    for d in result.decode:
        lines.append(f"  {d.batch_size:>5} {d.beam:>4} {d.sentences:>9} {d.sentences_per_s:>9.1f} "
                     f"{d.tgt_tokens_per_s:>9.1f}")
    return "\n".join(lines)

