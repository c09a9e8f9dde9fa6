"""Speed benchmark: training tokens/s, decoding sentences/s, memory, FLOPs and the device's limit.

Everything is measured in one process on the real tensorized data, so the
figures can be compared as ratios: model FLOP/s over the device's measured
matrix-product FLOP/s gives the fraction of the limit reached.

:func:`scaling` then times the same updates in ``train.nproc``-style data parallelism (DDP, started
by torch's elastic launch like the train stage) against that one process, in the same command.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path
from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from s2s.config import Params
from s2s.device import resolve_precision, set_threads
from s2s.distributed import World, joined, threads_per_process
from s2s.launch import Rendezvous, run_on_node
from s2s.model import Seq2Seq
from s2s.optim import build_optimizer
from s2s.search import LengthLimit
from s2s.subword import Vocabs
from s2s.tensors import ParallelData, collate
from s2s.train import Replicas, build_model, epoch_updates, optimizer_step, training_device, update_batches
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
    scaling: Optional["Scaling"] = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Scaling:
    """Training in ``processes`` data-parallel processes against one process, timed in the same command.

    The one process has the hardware of all of them on the CPU (``processes`` x their threads:
    the same cores) and one of their GPUs on CUDA; ``efficiency`` is the speedup per unit of that
    hardware: the speedup itself on the CPU, the speedup / ``processes`` on GPUs.
    """

    processes: int
    threads_per_process: int
    tgt_tokens_per_s: float           # all processes together
    baseline_threads: int
    baseline_tgt_tokens_per_s: float
    speedup: float
    efficiency: float


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
    groups = timed_groups(train_data, params, warmup_steps + steps)
    flops = train_flops_per_token(model, train_data, groups[0][0], device)
    tokens, padded, seconds = time_updates(model, params, train_data, groups, warmup_steps, device)
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


def timed_groups(train_data: ParallelData, params: Params, needed: int) -> list[list[np.ndarray]]:
    """The first ``needed`` updates of epoch 1 (cycled when the epoch has fewer)."""
    updates = epoch_updates(train_data, params.train, epoch=1)
    return (updates * (1 + needed // len(updates)))[:needed]


def time_updates(model: Seq2Seq, params: Params, train_data: ParallelData, groups: list[list[np.ndarray]],
                 warmup_steps: int, device: torch.device,
                 replicas: Optional[Replicas] = None) -> tuple[int, int, float]:
    """Train on ``groups`` as ``s2s train`` does; after ``warmup_steps`` updates, sum the target
    tokens (of all ranks), the padded target positions and the seconds."""
    optimizer = build_optimizer(model, params.train.lr)
    dtype = resolve_precision(params.train.precision, device)
    world = replicas.ranks.world if replicas is not None else World()
    model.train()
    tokens, padded, seconds = 0, 0, 0.0
    for i, group in enumerate(groups):
        _sync(device)
        started = time.perf_counter()
        _, n_tokens, _ = optimizer_step(model, optimizer, update_batches(train_data, group, world), params.train,
                                        device, dtype, replicas)
        _sync(device)
        if i >= warmup_steps:
            seconds += time.perf_counter() - started
            tokens += n_tokens
            padded += sum(len(indices) * int(train_data.tgt_lens[indices].max() + 1) for indices in group)
    return tokens, padded, seconds


def scaling(params: Params, root: str, baseline: BenchResult, nproc: int, warmup_steps: int = 5,
            steps: int = 30) -> Scaling:
    """Time ``steps`` updates in ``nproc`` DDP processes on this node (each ``train.threads`` threads, or
    its share of the cores) against ``baseline``, the one-process :func:`bench` of the same params."""
    returned = run_on_node(_scaling_rank, (params, root, warmup_steps, steps), nproc, Rendezvous.from_env())
    tokens, seconds = next(value for value in returned.values() if value is not None)
    rate = tokens / seconds
    speedup = rate / baseline.train_tgt_tokens_per_s
    cuda = baseline.device.startswith("cuda")
    per_process = threads_per_process(params.train.threads, World(0, 0, nproc, nproc))
    return Scaling(processes=nproc, threads_per_process=per_process, tgt_tokens_per_s=rate,
                   baseline_threads=baseline.threads, baseline_tgt_tokens_per_s=baseline.train_tgt_tokens_per_s,
                   speedup=speedup, efficiency=speedup / nproc if cuda else speedup)


def _scaling_rank(params: Params, root: str, warmup_steps: int, steps: int) -> Optional[tuple[int, float]]:
    """One of :func:`scaling`'s processes: the timed updates under DDP; the writer returns the
    tokens of all ranks and the slowest rank's seconds."""
    from s2s.layout import Layout

    world = World.from_env()
    layout = Layout(Path(root))
    vocabs, train_data = Vocabs.load(layout.spm), ParallelData.load(layout.split_tensors("train"))
    device = training_device(params.train, world)
    set_threads(threads_per_process(params.train.threads, world))
    with joined(world, device) as ranks:
        torch.manual_seed(params.train.seed)
        model = build_model(params.model, vocabs).to(device)
        replicas = Replicas.wrap(model, params.train, ranks, device)
        groups = timed_groups(train_data, params, warmup_steps + steps)
        tokens, _, seconds = time_updates(model, params, train_data, groups, warmup_steps, device, replicas)
        slowest = ranks.gather(seconds)
    return (tokens, max(slowest)) if slowest is not None else None


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
    if result.scaling is not None:
        sc = result.scaling
        lines += ["data-parallel training (DDP), the same updates:",
                  f"  {sc.processes} processes x {sc.threads_per_process} threads: {sc.tgt_tokens_per_s:,.0f} target "
                  f"tokens/s in all",
                  f"  1 process x {sc.baseline_threads} threads: {sc.baseline_tgt_tokens_per_s:,.0f} target tokens/s",
                  f"  speedup {sc.speedup:.2f}x, scaling efficiency {sc.efficiency:.0%}"]
    return "\n".join(lines)

