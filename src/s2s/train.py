"""The training loop: token-budget batches, Adam, schedules, clipping, early stopping, resume.

Training validates at the end of every epoch or, with ``train.valid_every: n``,
every n updates (for corpora where an epoch takes hours); early stopping,
the plateau schedule and averaging count validations. It stops at
``train.max_epochs``, at ``train.max_steps`` updates, or when valid stops
improving, and always validates where it stops. The next updates' batches are
built by a background thread from the memory-mapped arrays while the model
trains.

Two files come out of it. ``models/model.pt`` is the best model (weights,
params, and the SentencePiece models, so it translates on its own): the
validation with the best valid metric or, with ``train.average_last: k``, the
mean of the weights at the last k validations when valid says it is better.
``models/last.pt`` is the resume checkpoint: model, optimizer, schedule, RNG
state, progress and data position, written every ``train.checkpoint_every``
steps, at every epoch end and on SIGINT/SIGTERM. Running training again with
the same params continues from it, and on the CPU ends with the same bytes
as a run that was never interrupted.

Under several processes (``train.nproc``, or ``torchrun``) every rank builds the same updates
and trains on its token-balanced share of each batch through DDP; the loss is divided by the
update's *global* target tokens, so the all-reduced gradient is the one process's. The writer
(:class:`~s2s.distributed.Ranks`) alone validates and writes; the figures it finds and every
stop are shared, so all ranks take the same decisions. A resumed run must have the world size
of the run that wrote ``models/last.pt``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol

import numpy as np
import torch
from tqdm import tqdm

from s2s.averaging import Average, average_states, cpu_state, keep_recent
from s2s.checkpoint import fingerprint, require_world_size, resume_point, save_checkpoint, save_model
from s2s.config import ModelConfig, Params, TrainConfig
from s2s.device import resolve_device, resolve_precision, set_threads
from s2s.distributed import Ranks, World, loss_divisor, rank_rows, threads_per_process
from s2s.model import Seq2Seq
from s2s.optim import Schedule, build_optimizer, load_optimizer_state
from s2s.search import LengthLimit
from s2s.signals import TrainingDiverged, TrainingInterrupted, stop_requests
from s2s.subword import Vocabs
from s2s.prefetch import prefetched
from s2s.tensors import Batch, ParallelData, collate, token_batches
from s2s.translator import Translator
from s2s.validation import validation_bleu, validation_loss

log = logging.getLogger(__name__)


class EpochLogger(Protocol):
    """Receives one record per validation (dvclive in the pipeline, nothing in tests)."""

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None: ...


@dataclass
class Progress:
    """Everything about where training stands, saved in the resume checkpoint."""

    epoch: int = 1                # the epoch in progress (1-based)
    batches_done: int = 0         # optimizer steps done within it
    step: int = 0                 # optimizer steps in all
    validations: int = 0
    best_epoch: int = 0           # where the best validation was
    best_step: int = 0
    best_valid_loss: float = math.inf
    best_valid_bleu: float = -math.inf
    bad_validations: int = 0      # in a row, since the best
    stopped: bool = False         # early stopping, max_epochs or max_steps reached
    window_loss: float = 0.0      # sums over the updates since the last validation
    window_tokens: int = 0
    window_grad_norm: float = 0.0
    window_seconds: float = 0.0
    window_steps: int = 0
    seconds: float = 0.0          # training time in all (validation excluded)
    tokens: int = 0
    recent: list = dataclasses.field(default_factory=list)  # [epoch, step] of each kept recent_models state

    def beaten_by(self, metric: str, valid_loss: float, valid_bleu: float) -> bool:
        """Whether these valid figures beat the best epoch's on ``metric`` (loss lower, or BLEU higher)."""
        return valid_loss < self.best_valid_loss if metric == "loss" else valid_bleu > self.best_valid_bleu


@dataclass
class TrainResult:
    """Reproducible figures (quality) and run-dependent ones (speed), kept apart."""

    params: int
    progress: Progress
    device: str
    average: Optional[Average] = None
    processes: int = 1  # the world size: tokens/s are those of all processes together

    def quality(self) -> dict:
        p = self.progress
        figures = {"params": self.params, "epochs": p.epoch - 1, "steps": p.step, "best_epoch": p.best_epoch,
                   "best_step": p.best_step, "validations": p.validations,
                   "best_valid_loss": round(p.best_valid_loss, 6),
                   "best_valid_ppl": round(math.exp(p.best_valid_loss), 4),
                   "best_valid_bleu": round(p.best_valid_bleu, 2), "model_is_average": False}
        if self.average is not None:
            a = self.average
            figures.update({"average_first_epoch": a.first_epoch, "average_last_epoch": a.last_epoch,
                            "average_first_step": a.first_step, "average_last_step": a.last_step,
                            "average_valid_loss": round(a.valid_loss, 6),
                            "average_valid_ppl": round(math.exp(a.valid_loss), 4),
                            "average_valid_bleu": round(a.valid_bleu, 2), "model_is_average": a.chosen})
        return figures

    def speed(self) -> dict:
        return {"train_seconds": round(self.progress.seconds, 1),
                "train_tgt_tokens_per_s": round(self.progress.tokens / max(self.progress.seconds, 1e-9), 1),
                "device": self.device, "processes": self.processes}


def build_model(config: ModelConfig, vocabs: Vocabs) -> Seq2Seq:
    return Seq2Seq(config, vocabs.src.get_piece_size(), vocabs.tgt.get_piece_size())


@dataclass
class Update:
    """One optimizer step's data on this rank: its rows of each of the ``accumulate`` batches."""

    batches: list[Batch]   # with one process, the whole batches
    weights: list[float]   # 1, or 0 for a stand-in row where a batch left this rank no rows
    n_tokens: int          # target tokens of the whole update, over all ranks: the loss divisor


class TokenLosses(torch.nn.Module):
    """The model's ``token_losses`` as ``forward``: what DDP wraps (its hooks run through forward)."""

    def __init__(self, model: Seq2Seq, label_smoothing: float):
        super().__init__()
        self.model, self.label_smoothing = model, label_smoothing

    def forward(self, batch: Batch) -> torch.Tensor:
        """(batch, tgt_len) teacher-forced token losses, 0 at padding."""
        return self.model.token_losses(batch.src, batch.src_lens, batch.tgt_in, batch.tgt_out, self.label_smoothing)


@dataclass
class Replicas:
    """The model under DDP and the ranks it is replicated over (several processes only)."""

    ddp: torch.nn.parallel.DistributedDataParallel
    ranks: Ranks

    @classmethod
    def wrap(cls, model: Seq2Seq, config: TrainConfig, ranks: Ranks, device: torch.device) -> "Replicas":
        ddp = torch.nn.parallel.DistributedDataParallel(
            TokenLosses(model, config.label_smoothing), device_ids=[device] if device.type == "cuda" else None)
        return cls(ddp, ranks)

    def clip(self, model: Seq2Seq, max_norm: float) -> float:
        """Clip the (all-reduced, equal) gradients by one norm for all ranks: the mean of the ranks' norms,
        so that a reduction rounded otherwise on one rank (other threads) cannot make the replicas drift."""
        own = float(torch.nn.utils.clip_grad_norm_(model.parameters(), math.inf))  # the norm; scales by 1
        norm = self.ranks.sum([own])[0] / self.ranks.world.size
        coefficient = max_norm / (norm + 1e-6)
        if math.isfinite(norm) and coefficient < 1.0:
            torch._foreach_mul_([p.grad for p in model.parameters() if p.grad is not None], coefficient)
        return norm


def training_device(config: TrainConfig, world: World) -> torch.device:
    """``train.device``; on CUDA with several processes on a node, the GPU of ``LOCAL_RANK``."""
    device = resolve_device(config.device)
    if device.type == "cuda" and world.size > 1:
        return torch.device("cuda", world.local_rank)
    return device


def train(params: Params, train_data: ParallelData, valid_data: ParallelData, vocabs: Vocabs,
          model_path: Path, last_path: Path, logger: Optional[EpochLogger] = None,
          ranks: Ranks = Ranks()) -> TrainResult:
    """Train (or resume) until ``max_epochs``, ``max_steps`` or ``patience`` validations without a
    better valid metric.

    ``ranks``: the processes training together (see :func:`s2s.distributed.joined`); only the
    writer among them writes ``model_path`` and ``last_path`` and calls ``logger``.
    """
    config: TrainConfig = params.train
    world = ranks.world
    device = ranks.device if world.size > 1 else training_device(config, world)
    dtype = resolve_precision(config.precision, device)
    set_threads(threads_per_process(config.threads, world))
    torch.manual_seed(config.seed)
    model = build_model(params.model, vocabs).to(device)
    if world.size > 1:  # the same initial weights on every rank, then each its own dropout stream
        torch.manual_seed(int(np.random.SeedSequence([config.seed, world.rank]).generate_state(1)[0]))
    replicas = Replicas.wrap(model, config, ranks, device) if world.size > 1 else None
    optimizer = build_optimizer(model, config.lr)
    schedule = Schedule(optimizer, config)
    translator = Translator(model, vocabs, LengthLimit.from_eval(params.eval),
                            params.eval.batch_size)
    progress, best_state, recent_states = Progress(), cpu_state(model), []
    average: Optional[Average] = None
    averaged_state: Optional[dict] = None  # the mean of recent_states, once the run has stopped
    key = fingerprint(params, train_data)
    # the same updates and the same collectives on every rank (checkpoint_every decides when they gather)
    ranks.agree((key, config.checkpoint_every), "the params or the training data")
    checkpoint = ranks.on_writer(lambda: resume_point(last_path, params, train_data))
    if checkpoint is not None:
        require_world_size(checkpoint, world.size, last_path)
        model.load_state_dict(checkpoint["model"])
        load_optimizer_state(optimizer, checkpoint["optimizer"])
        schedule.load_state_dict(checkpoint["schedule"])
        torch.set_rng_state(checkpoint["rng"] if world.size == 1 else checkpoint["rng"][world.rank])
        progress, best_state = Progress(**checkpoint["progress"]), checkpoint["best_model"]
        recent_states = checkpoint["recent_models"]
        log.info("resuming from %s: epoch %d, step %d", last_path, progress.epoch, progress.step)
    log.info("model: %s parameters; device %s%s; %d training pairs", f"{model.num_parameters():,}", device,
             " (bf16 autocast)" if dtype else "", len(train_data))

    def save_last() -> None:
        """The resume checkpoint, written by the writer with every rank's RNG state (all ranks call it)."""
        rng = torch.get_rng_state() if world.size == 1 else ranks.gather(torch.get_rng_state())
        ranks.on_writer(lambda: save_checkpoint(
            {"fingerprint": key, "progress": dataclasses.asdict(progress), "model": model.state_dict(),
             "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(), "rng": rng,
             "world_size": world.size, "best_model": best_state, "recent_models": recent_states,
             "average": None if average is None else dataclasses.asdict(average)}, last_path))

    def validate(finishing: bool, what: str) -> None:
        """Validate here; keep the best and recent weights; decide on stopping (and average then)."""
        nonlocal best_state, recent_states, average, averaged_state
        scores = ranks.on_writer(lambda: _valid_scores(model, translator, valid_data, config, device))
        try:
            best_state = _validate(progress, scores, model, config, schedule, optimizer, best_state,
                                   logger if ranks.is_writer else None, keep_best=ranks.is_writer)
        except NonFinite as blowup:
            raise _diverged(f"{what}: {blowup}", progress, config, last_path) from None
        progress.stopped = progress.stopped or finishing
        if config.average_last:
            if ranks.is_writer:
                recent_states = keep_recent(recent_states, cpu_state(model), config.average_last)
            progress.recent = keep_recent(progress.recent, [progress.epoch, progress.step], config.average_last)
            if progress.stopped and len(progress.recent) >= 2:  # scored before the run is saved as finished
                if ranks.is_writer:
                    averaged_state = average_states(recent_states)
                average = ranks.on_writer(lambda: _validate_average(averaged_state, recent_states, progress, model,
                                                                    translator, valid_data, config, device))

    with stop_requests() as stop_signal:
        while not progress.stopped:
            model.train()
            groups = epoch_updates(train_data, config, progress.epoch)
            bar = tqdm(total=len(groups), initial=progress.batches_done, desc=f"epoch {progress.epoch}",
                       disable=None if ranks.is_writer else True, leave=False)
            for update in prefetched(groups[progress.batches_done:],
                                     lambda g: update_batches(train_data, g, world)):
                started = time.perf_counter()
                try:
                    loss, n_tokens, grad_norm = optimizer_step(model, optimizer, update, config, device, dtype,
                                                               replicas)
                except NonFinite as blowup:
                    raise _diverged(f"update {progress.step + 1}: {blowup}", progress, config, last_path) from None
                schedule.after_step()
                seconds = time.perf_counter() - started
                bar.update()
                progress.step += 1
                progress.batches_done += 1
                progress.window_loss += loss
                progress.window_tokens += n_tokens
                progress.window_grad_norm += grad_norm
                progress.window_steps += 1
                progress.window_seconds += seconds
                progress.seconds += seconds
                progress.tokens += n_tokens
                caught = ranks.first_signal(stop_signal())  # one rank's SIGTERM stops them all here
                epoch_end = progress.batches_done == len(groups)
                finishing = bool(config.max_steps and progress.step >= config.max_steps) or (
                    epoch_end and progress.epoch >= config.max_epochs)
                scheduled = (progress.step % config.valid_every == 0) if config.valid_every else epoch_end
                if finishing or scheduled:
                    validate(finishing, f"after update {progress.step}")
                    model.train()  # validation leaves it in eval mode
                if epoch_end:
                    progress.epoch += 1
                    progress.batches_done = 0
                if finishing or scheduled or epoch_end or caught or (
                        config.checkpoint_every and progress.step % config.checkpoint_every == 0):
                    save_last()
                if not caught and (finishing or scheduled):  # a signal during validation: stop now
                    caught = ranks.first_signal(stop_signal())
                if caught and not progress.stopped:
                    ranks.wait()  # the writer's checkpoint is complete before any rank exits
                    raise _interrupted(caught, progress, last_path)
                if progress.stopped:
                    break
            bar.close()
    if average is not None and average.chosen:
        final_state, loss, bleu = averaged_state, average.valid_loss, average.valid_bleu
    else:
        final_state, loss, bleu = best_state, progress.best_valid_loss, progress.best_valid_bleu
    if ranks.is_writer:
        save_model(model_path, final_state, params, vocabs, step=progress.step,
                   epoch=None if average is not None and average.chosen else progress.best_epoch,
                   valid_loss=loss, valid_bleu=bleu,
                   average=None if average is None else dataclasses.asdict(average))
    return TrainResult(params=model.num_parameters(), progress=progress, device=str(device), average=average,
                       processes=world.size)


class NonFinite(ArithmeticError):
    """The loss or the gradient norm of an update is NaN or infinite; the update was not applied."""


def _diverged(what: str, progress: Progress, config: TrainConfig, last_path: Path) -> TrainingDiverged:
    kept = (f"{last_path} keeps the last checkpoint from before it" if last_path.exists()
            else "no checkpoint was written before it")
    clip = "keep train.clip_grad at 1.0 or below" if config.clip_grad else "set train.clip_grad (e.g. 1.0)"
    return TrainingDiverged(f"training diverged in epoch {progress.epoch}, {what}; "
                            f"{kept}, models/model.pt and the metrics are unchanged. Lower train.lr (now "
                            f"{config.lr:g}, e.g. to {config.lr / 4:g}) and {clip}, then run again")


def _interrupted(signum: int, progress: Progress, last_path: Path) -> TrainingInterrupted:
    return TrainingInterrupted(f"stopped by signal {signum} at epoch {progress.epoch}, step {progress.step}; "
                               f"the checkpoint is in {last_path}: run the stage again to resume")


def _validate_average(averaged_state: dict, states: list[dict], progress: Progress, model: Seq2Seq,
                      translator: Translator, valid_data: ParallelData, config: TrainConfig,
                      device: torch.device) -> Average:
    """Score ``averaged_state``, the mean of ``states`` (those of the last validations, at
    ``progress.recent``), on valid like a validation; ``model`` keeps its weights."""
    model.load_state_dict(averaged_state)
    valid_loss = validation_loss(model, valid_data, config.batch_tokens, device)
    valid_bleu = validation_bleu(translator, valid_data)
    model.load_state_dict(states[-1])  # the weights of the last validation, as training left them
    chosen = progress.beaten_by(config.early_stop_metric, valid_loss, valid_bleu)
    (first_epoch, first_step), (last_epoch, last_step) = progress.recent[0], progress.recent[-1]
    average = Average(first_epoch=first_epoch, last_epoch=last_epoch, first_step=first_step, last_step=last_step,
                      valid_loss=valid_loss, valid_bleu=valid_bleu, chosen=chosen)
    best = f"epoch {progress.best_epoch}" if not config.valid_every else f"step {progress.best_step}"
    span = (f"epochs {first_epoch}-{last_epoch}" if not config.valid_every
            else f"{len(states)} validations, steps {first_step}-{last_step}")
    log.info("average of %s: valid loss %.4f, valid BLEU %.2f; %s", span, valid_loss, valid_bleu,
             "better than the best one: it is the model" if chosen else f"the best ({best}) stays the model")
    return average


def epoch_updates(data: ParallelData, config: TrainConfig, epoch: int) -> list[list[np.ndarray]]:
    """The updates of one epoch, each ``accumulate`` batches of sentence indices, shuffled by (seed, epoch).

    Built from the split's lengths alone: no token is read.
    """
    rng = np.random.default_rng([config.seed, epoch])
    batches = token_batches(data.src_lens, data.tgt_lens, config.batch_tokens, rng, config.bucket_pool,
                            config.buckets_per_batch)
    return [batches[i:i + config.accumulate] for i in range(0, len(batches), config.accumulate)]


def update_batches(data: ParallelData, group: list[np.ndarray], world: World = World()) -> Update:
    """This rank's padded (CPU) batches of one update, one per array of sentence indices in
    ``group``: with several processes its :func:`~s2s.distributed.rank_rows` share of each."""
    n_tokens = int(sum((data.tgt_lens[indices] + 1).sum() for indices in group))  # each target ends in EOS
    if world.size == 1:
        return Update([collate(data, indices) for indices in group], [1.0] * len(group), n_tokens)
    batches, weights = [], []
    for indices in group:
        mine = rank_rows(indices, data.tgt_lens[indices], world)
        batches.append(collate(data, mine if len(mine) else indices[:1]))  # DDP needs every rank's backward
        weights.append(1.0 if len(mine) else 0.0)
    return Update(batches, weights, n_tokens)


def optimizer_step(model: Seq2Seq, optimizer: torch.optim.Optimizer, update: Update, config: TrainConfig,
                   device: torch.device, dtype: Optional[torch.dtype],
                   replicas: Optional[Replicas] = None) -> tuple[float, int, float]:
    """One update (``accumulate`` batches); returns the summed loss and tokens over all ranks, and the
    gradient norm.

    With ``replicas`` (several processes) DDP all-reduces the gradients at the last batch's
    backward. A non-finite loss or gradient norm raises :class:`NonFinite` before the
    optimizer step, so the weights stay those of the previous update.
    """
    batches = [batch.to(device) for batch in update.batches]
    world = replicas.ranks.world if replicas is not None else World()
    divisor = loss_divisor(update.n_tokens, world)
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for i, (batch, weight) in enumerate(zip(batches, update.weights)):
        last = i == len(batches) - 1
        with contextlib.nullcontext() if replicas is None or last else replicas.ddp.no_sync():
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                if replicas is None:
                    losses = model.token_losses(batch.src, batch.src_lens, batch.tgt_in, batch.tgt_out,
                                                config.label_smoothing)
                else:
                    losses = replicas.ddp(batch)
                loss = losses.sum()
            (loss / divisor if weight else loss * 0.0).backward()
        total += loss.item() * weight
    if replicas is not None:
        total, = replicas.ranks.sum([total])
    n_tokens = update.n_tokens
    if not math.isfinite(total):
        raise NonFinite(f"the loss is {total}")
    max_norm = config.clip_grad if config.clip_grad > 0 else math.inf
    if replicas is None:
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))
    else:
        grad_norm = replicas.clip(model, max_norm)
    if not math.isfinite(grad_norm):  # clipping cannot mend a NaN gradient: the update is not applied
        raise NonFinite(f"the gradient norm is {grad_norm}")
    optimizer.step()
    return total, n_tokens, grad_norm


def _valid_scores(model: Seq2Seq, translator: Translator, valid_data: ParallelData, config: TrainConfig,
                  device: torch.device) -> tuple[float, float]:
    """Valid loss and greedy valid BLEU of the model as it stands (no BLEU after a non-finite loss)."""
    valid_loss = validation_loss(model, valid_data, config.batch_tokens, device)
    if not math.isfinite(valid_loss):
        return valid_loss, math.nan
    return valid_loss, validation_bleu(translator, valid_data)


def _validate(progress: Progress, scores: tuple[float, float], model: Seq2Seq, config: TrainConfig,
              schedule: Schedule, optimizer: torch.optim.Optimizer, best_state: dict,
              logger: Optional[EpochLogger], keep_best: bool = True) -> dict:
    """Record a validation's ``scores`` (valid loss, BLEU): keep the best weights (``keep_best``: the
    writer), step the schedule, log, decide on early stopping. Every rank takes the same decisions."""
    valid_loss, valid_bleu = scores
    if not math.isfinite(valid_loss):
        raise NonFinite(f"the valid loss is {valid_loss}")
    progress.validations += 1
    improved = progress.beaten_by(config.early_stop_metric, valid_loss, valid_bleu)
    metric = valid_loss if config.early_stop_metric == "loss" else valid_bleu
    if improved:
        progress.best_epoch, progress.best_step, progress.bad_validations = progress.epoch, progress.step, 0
        progress.best_valid_loss, progress.best_valid_bleu = valid_loss, valid_bleu
        if keep_best:
            best_state = cpu_state(model)
    else:
        progress.bad_validations += 1
    record = {"train/loss": progress.window_loss / progress.window_tokens, "valid/loss": valid_loss,
              "valid/ppl": math.exp(valid_loss), "valid/bleu": valid_bleu,
              "lr": optimizer.param_groups[0]["lr"], "grad_norm": progress.window_grad_norm / progress.window_steps,
              "tokens_per_s": progress.window_tokens / max(progress.window_seconds, 1e-9)}
    where = f"epoch {progress.epoch}" if not config.valid_every else f"step {progress.step} (epoch {progress.epoch})"
    log.info("%s: train loss %.4f, valid loss %.4f (ppl %.2f), valid BLEU %.2f%s, lr %.2g, "
             "%.0f tgt tokens/s, %.0f s", where, record["train/loss"], valid_loss, record["valid/ppl"],
             valid_bleu, " *best*" if improved else "", record["lr"], record["tokens_per_s"], progress.window_seconds)
    if logger is not None:
        logger.log_epoch(progress.epoch, record)
    schedule.after_epoch(metric)
    if progress.bad_validations >= config.patience:
        log.info("early stopping: no better valid %s for %d validations", config.early_stop_metric,
                 progress.bad_validations)
        progress.stopped = True
    progress.window_loss, progress.window_tokens, progress.window_grad_norm = 0.0, 0, 0.0
    progress.window_seconds, progress.window_steps = 0.0, 0
    return best_state
