"""The training loop: token-budget batches, Adam, schedules, clipping, early stopping, resume.

Two files come out of it. ``models/model.pt`` is the best model (weights,
params, and the SentencePiece models, so it translates on its own): the
epoch with the best valid metric or, with ``train.average_last: k``, the
mean of the last k epochs' weights when valid says it is better.
``models/last.pt`` is the resume checkpoint: model, optimizer, schedule, RNG
state, progress and data position, written every ``train.checkpoint_every``
steps, at every epoch end and on SIGINT/SIGTERM. Running training again with
the same params continues from it, and on the CPU ends with the same bytes
as a run that was never interrupted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Protocol

import numpy as np
import torch
from sacrebleu.metrics import BLEU
from torch import nn
from torch.torch_version import TorchVersion
from tqdm import tqdm

from s2s.atomic import atomic_path
from s2s.averaging import Average, average_states, cpu_state, keep_recent
from s2s.config import ModelConfig, Params, TrainConfig, params_to_dict
from s2s.errors import S2SError
from s2s.model import Seq2Seq
from s2s.search import LengthLimit
from s2s.subword import Vocabs
from s2s.tensors import ParallelData, collate, token_batches
from s2s.translator import Translator

log = logging.getLogger(__name__)


class TrainingInterrupted(S2SError):
    """SIGINT/SIGTERM: the checkpoint is saved and the stage can be run again to resume."""


class EpochLogger(Protocol):
    """Receives one record per epoch (dvclive in the pipeline, nothing in tests)."""

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None: ...


@dataclass
class Progress:
    """Everything about where training stands, saved in the resume checkpoint."""

    epoch: int = 1                # the epoch in progress (1-based)
    batches_done: int = 0         # optimizer steps done within it
    step: int = 0                 # optimizer steps in all
    best_epoch: int = 0
    best_valid_loss: float = math.inf
    best_valid_bleu: float = -math.inf
    bad_epochs: int = 0
    stopped: bool = False         # early stopping or max_epochs reached
    epoch_loss: float = 0.0       # sums over the epoch in progress
    epoch_tokens: int = 0
    epoch_grad_norm: float = 0.0
    epoch_seconds: float = 0.0
    seconds: float = 0.0          # training time in all (validation excluded)
    tokens: int = 0

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

    def quality(self) -> dict:
        p = self.progress
        figures = {"params": self.params, "epochs": p.epoch - 1, "steps": p.step, "best_epoch": p.best_epoch,
                   "best_valid_loss": round(p.best_valid_loss, 6),
                   "best_valid_ppl": round(math.exp(p.best_valid_loss), 4),
                   "best_valid_bleu": round(p.best_valid_bleu, 2), "model_is_average": False}
        if self.average is not None:
            a = self.average
            figures.update({"average_first_epoch": a.first_epoch, "average_last_epoch": a.last_epoch,
                            "average_valid_loss": round(a.valid_loss, 6),
                            "average_valid_ppl": round(math.exp(a.valid_loss), 4),
                            "average_valid_bleu": round(a.valid_bleu, 2), "model_is_average": a.chosen})
        return figures

    def speed(self) -> dict:
        return {"train_seconds": round(self.progress.seconds, 1),
                "train_tgt_tokens_per_s": round(self.progress.tokens / max(self.progress.seconds, 1e-9), 1),
                "device": self.device}


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
    torch.set_num_threads(threads or os.cpu_count() or 1)


def build_model(config: ModelConfig, vocabs: Vocabs) -> Seq2Seq:
    return Seq2Seq(config, vocabs.src.get_piece_size(), vocabs.tgt.get_piece_size())


def _atomic_save(payload: dict, path: Path) -> None:
    with atomic_path(path) as part:
        torch.save(payload, part)


def save_model(path: Path, state: dict, params: Params, vocabs: Vocabs, **extra) -> None:
    """Write a self-contained model: weights, params, SentencePiece models, extras."""
    _atomic_save({"model": state, "model_config": dataclasses.asdict(params.model),
                  "params": params_to_dict(params), "spm": vocabs.to_protos(), **extra}, path)


def load_model(path: Path, device: torch.device) -> tuple[Seq2Seq, dict]:
    """The model of a checkpoint, in eval mode on ``device``, and the checkpoint dict."""
    if not Path(path).exists():
        raise S2SError(f"{path}: model checkpoint not found; train one with `dvc repro train`")
    checkpoint = torch.load(path, map_location=device, weights_only=False)
    config = ModelConfig(**checkpoint["model_config"])
    state = checkpoint["model"]
    model = Seq2Seq(config, state["encoder.embed.weight"].size(0), state["decoder.embed.weight"].size(0))
    model.load_state_dict(state)
    return model.to(device).eval(), checkpoint


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


@torch.no_grad()
def validation_loss(model: Seq2Seq, data: ParallelData, batch_tokens: int, device: torch.device) -> float:
    """Mean cross-entropy per target token (no label smoothing) over a split."""
    model.eval()
    total, tokens = 0.0, 0
    for indices in token_batches(data.src_lens, data.tgt_lens, batch_tokens):
        batch = collate(data, indices).to(device)
        total += model.token_losses(batch.src, batch.src_lens, batch.tgt_in, batch.tgt_out).sum().item()
        tokens += batch.n_tgt_tokens
    return total / tokens


def validation_bleu(translator: Translator, data: ParallelData) -> float:
    """Greedy-decoded BLEU of a split against its SentencePiece-decoded references."""
    hyps = translator.detokenize(translator.translate_ids([data.src(i) for i in range(len(data))]))
    refs = [translator.vocabs.tgt.decode(data.tgt(i).tolist()) for i in range(len(data))]
    return BLEU().corpus_score(hyps, [refs]).score


def fingerprint(params: Params, train_data: ParallelData) -> str:
    """What a resume checkpoint must match: the params training uses (those ``dvc.yaml`` lists for
    the stage, less threads and checkpoint frequency) and the training data."""
    train = {k: v for k, v in dataclasses.asdict(params.train).items() if k not in ("threads", "checkpoint_every")}
    decoding = {k: getattr(params.eval, k) for k in ("max_len_a", "max_len_b", "batch_size")}  # valid BLEU
    blob = json.dumps({"model": dataclasses.asdict(params.model), "train": train, "eval": decoding},
                      sort_keys=True).encode()
    digest = hashlib.sha256(blob)
    digest.update(train_data.src_ids.tobytes())
    digest.update(train_data.tgt_ids.tobytes())
    return digest.hexdigest()


def resume_point(last_path: Path, params: Params, train_data: ParallelData) -> Optional[dict]:
    """The resume checkpoint if it exists, matches these params and data, and is unfinished.

    Loaded on the CPU: the model and optimizer copy their state to the device, and
    the RNG state and the kept epoch weights belong on the CPU.
    """
    if not last_path.exists():
        return None
    checkpoint = torch.load(last_path, map_location="cpu", weights_only=False)
    if checkpoint.get("fingerprint") != fingerprint(params, train_data) or checkpoint["progress"]["stopped"]:
        log.info("%s belongs to other params or a finished run; training from scratch", last_path)
        return None
    return checkpoint


@contextlib.contextmanager
def stop_requests() -> Iterator[Callable[[], Optional[int]]]:
    """Catch SIGINT/SIGTERM while training; yields a function returning the signal caught, if any."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: caught[0] if caught else None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def train(params: Params, train_data: ParallelData, valid_data: ParallelData, vocabs: Vocabs,
          model_path: Path, last_path: Path, logger: Optional[EpochLogger] = None) -> TrainResult:
    """Train (or resume) until ``max_epochs`` or ``patience`` epochs without a better valid metric."""
    config: TrainConfig = params.train
    device = resolve_device(config.device)
    dtype = resolve_precision(config.precision, device)
    set_threads(config.threads)
    torch.manual_seed(config.seed)
    model = build_model(params.model, vocabs).to(device)
    optimizer = build_optimizer(model, config.lr)
    schedule = Schedule(optimizer, config)
    translator = Translator(model, vocabs, LengthLimit(params.eval.max_len_a, params.eval.max_len_b),
                            params.eval.batch_size)
    progress, best_state, recent_states = Progress(), cpu_state(model), []
    average: Optional[Average] = None
    averaged_state: Optional[dict] = None  # the mean of recent_states, once the run has stopped
    key = fingerprint(params, train_data)
    checkpoint = resume_point(last_path, params, train_data)
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        load_optimizer_state(optimizer, checkpoint["optimizer"])
        schedule.load_state_dict(checkpoint["schedule"])
        torch.set_rng_state(checkpoint["rng"])
        progress, best_state = Progress(**checkpoint["progress"]), checkpoint["best_model"]
        recent_states = checkpoint["recent_models"]
        log.info("resuming from %s: epoch %d, step %d", last_path, progress.epoch, progress.step)
    log.info("model: %s parameters; device %s%s; %d training pairs", f"{model.num_parameters():,}", device,
             " (bf16 autocast)" if dtype else "", len(train_data))

    def save_last() -> None:
        _atomic_save({"fingerprint": key, "progress": dataclasses.asdict(progress), "model": model.state_dict(),
                      "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                      "rng": torch.get_rng_state(), "best_model": best_state, "recent_models": recent_states,
                      "average": None if average is None else dataclasses.asdict(average)}, last_path)

    with stop_requests() as stop_signal:
        while not progress.stopped:
            model.train()
            groups = epoch_updates(train_data, config, progress.epoch)
            bar = tqdm(groups[progress.batches_done:], desc=f"epoch {progress.epoch}", disable=None, leave=False)
            for group in bar:
                started = time.perf_counter()
                loss, n_tokens, grad_norm = optimizer_step(model, optimizer, train_data, group, config, device, dtype)
                schedule.after_step()
                seconds = time.perf_counter() - started
                progress.step += 1
                progress.batches_done += 1
                progress.epoch_loss += loss
                progress.epoch_tokens += n_tokens
                progress.epoch_grad_norm += grad_norm
                progress.epoch_seconds += seconds
                progress.seconds += seconds
                progress.tokens += n_tokens
                caught = stop_signal()
                if caught or (config.checkpoint_every and progress.step % config.checkpoint_every == 0):
                    save_last()
                if caught:
                    raise _interrupted(caught, progress, last_path)
            best_state = _end_epoch(progress, len(groups), model, translator, valid_data, config, device,
                                    schedule, optimizer, best_state, logger)
            if config.average_last:
                recent_states = keep_recent(recent_states, cpu_state(model), config.average_last)
                if progress.stopped and len(recent_states) >= 2:  # scored before the run is saved as finished
                    averaged_state = average_states(recent_states)
                    average = _validate_average(averaged_state, recent_states, progress, model, translator,
                                                valid_data, config, device)
            save_last()
            caught = stop_signal()  # a signal during validation: stop now, not after the next update
            if caught and not progress.stopped:
                raise _interrupted(caught, progress, last_path)
    if average is not None and average.chosen:
        final_state, loss, bleu = averaged_state, average.valid_loss, average.valid_bleu
    else:
        final_state, loss, bleu = best_state, progress.best_valid_loss, progress.best_valid_bleu
    save_model(model_path, final_state, params, vocabs, step=progress.step,
               epoch=None if average is not None and average.chosen else progress.best_epoch,
               valid_loss=loss, valid_bleu=bleu, average=None if average is None else dataclasses.asdict(average))
    return TrainResult(params=model.num_parameters(), progress=progress, device=str(device), average=average)


def _interrupted(signum: int, progress: Progress, last_path: Path) -> TrainingInterrupted:
    return TrainingInterrupted(f"stopped by signal {signum} at epoch {progress.epoch}, step {progress.step}; "
                               f"the checkpoint is in {last_path}: run the stage again to resume")


def _validate_average(averaged_state: dict, states: list[dict], progress: Progress, model: Seq2Seq,
                      translator: Translator, valid_data: ParallelData, config: TrainConfig,
                      device: torch.device) -> Average:
    """Score ``averaged_state``, the mean of ``states`` (the last epochs), on valid like an epoch;
    ``model`` keeps its weights."""
    model.load_state_dict(averaged_state)
    valid_loss = validation_loss(model, valid_data, config.batch_tokens, device)
    valid_bleu = validation_bleu(translator, valid_data)
    model.load_state_dict(states[-1])  # the weights of the last epoch, as training left them
    chosen = progress.beaten_by(config.early_stop_metric, valid_loss, valid_bleu)
    last = progress.epoch - 1
    average = Average(first_epoch=last - len(states) + 1, last_epoch=last, valid_loss=valid_loss,
                      valid_bleu=valid_bleu, chosen=chosen)
    log.info("average of epochs %d-%d: valid loss %.4f, valid BLEU %.2f; %s", average.first_epoch, last,
             valid_loss, valid_bleu, "better than the best epoch: it is the model" if chosen
             else f"the best epoch ({progress.best_epoch}) stays the model")
    return average


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


def epoch_updates(data: ParallelData, config: TrainConfig, epoch: int) -> list[list[np.ndarray]]:
    """The updates of one epoch, each ``accumulate`` batches of sentence indices, shuffled by (seed, epoch)."""
    rng = np.random.default_rng([config.seed, epoch])
    batches = token_batches(data.src_lens, data.tgt_lens, config.batch_tokens, rng, config.bucket_pool,
                            config.buckets_per_batch)
    return [batches[i:i + config.accumulate] for i in range(0, len(batches), config.accumulate)]


def optimizer_step(model: Seq2Seq, optimizer: torch.optim.Optimizer, data: ParallelData,
                   group: list[np.ndarray], config: TrainConfig, device: torch.device,
                   dtype: Optional[torch.dtype]) -> tuple[float, int, float]:
    """One update from ``group`` (``accumulate`` batches); returns summed loss, tokens, grad norm."""
    batches = [collate(data, indices).to(device) for indices in group]
    n_tokens = sum(batch.n_tgt_tokens for batch in batches)
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for batch in batches:
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = model.token_losses(batch.src, batch.src_lens, batch.tgt_in, batch.tgt_out,
                                      config.label_smoothing).sum()
        (loss / n_tokens).backward()
        total += loss.item()
    max_norm = config.clip_grad if config.clip_grad > 0 else math.inf
    grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))
    optimizer.step()
    return total, n_tokens, grad_norm


def _end_epoch(progress: Progress, n_steps: int, model: Seq2Seq, translator: Translator,
               valid_data: ParallelData, config: TrainConfig, device: torch.device, schedule: Schedule,
               optimizer: torch.optim.Optimizer, best_state: dict, logger: Optional[EpochLogger]) -> dict:
    """Validate, keep the best weights, step the schedule, log, decide on early stopping."""
    valid_loss = validation_loss(model, valid_data, config.batch_tokens, device)
    valid_bleu = validation_bleu(translator, valid_data)
    improved = progress.beaten_by(config.early_stop_metric, valid_loss, valid_bleu)
    metric = valid_loss if config.early_stop_metric == "loss" else valid_bleu
    if improved:
        progress.best_epoch, progress.bad_epochs = progress.epoch, 0
        progress.best_valid_loss, progress.best_valid_bleu = valid_loss, valid_bleu
        best_state = cpu_state(model)
    else:
        progress.bad_epochs += 1
    record = {"train/loss": progress.epoch_loss / progress.epoch_tokens, "valid/loss": valid_loss,
              "valid/ppl": math.exp(valid_loss), "valid/bleu": valid_bleu,
              "lr": optimizer.param_groups[0]["lr"], "grad_norm": progress.epoch_grad_norm / n_steps,
              "tokens_per_s": progress.epoch_tokens / max(progress.epoch_seconds, 1e-9)}
    log.info("epoch %d: train loss %.4f, valid loss %.4f (ppl %.2f), valid BLEU %.2f%s, lr %.2g, "
             "%.0f tgt tokens/s, %.0f s", progress.epoch, record["train/loss"], valid_loss, record["valid/ppl"],
             valid_bleu, " *best*" if improved else "", record["lr"], record["tokens_per_s"], progress.epoch_seconds)
    if logger is not None:
        logger.log_epoch(progress.epoch, record)
    schedule.after_epoch(metric)
    if progress.bad_epochs >= config.patience:
        log.info("early stopping: no better valid %s for %d epochs", config.early_stop_metric, progress.bad_epochs)
        progress.stopped = True
    elif progress.epoch >= config.max_epochs:
        progress.stopped = True
    progress.epoch += 1
    progress.batches_done = 0
    progress.epoch_loss, progress.epoch_tokens, progress.epoch_grad_norm, progress.epoch_seconds = 0.0, 0, 0.0, 0.0
    return best_state
