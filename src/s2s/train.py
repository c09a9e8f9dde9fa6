"""The training loop: token-budget batches, Adam, clipping, early stopping, atomic checkpoints."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol

import numpy as np
import torch
from tqdm import tqdm

from s2s.config import ModelConfig, Params, TrainConfig, params_to_dict
from s2s.errors import S2SError
from s2s.model import Seq2Seq
from s2s.subword import Vocabs
from s2s.tensors import ParallelData, collate, token_batches

log = logging.getLogger(__name__)


class EpochLogger(Protocol):
    """Receives one record per epoch (dvclive in the pipeline, nothing in tests)."""

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None: ...


@dataclass
class TrainResult:
    """Reproducible figures (quality) and run-dependent ones (speed), kept apart."""

    params: int
    epochs: int
    steps: int
    best_epoch: int
    best_valid_loss: float
    seconds: float
    tgt_tokens_per_s: float
    device: str

    def quality(self) -> dict:
        return {"params": self.params, "epochs": self.epochs, "steps": self.steps,
                "best_epoch": self.best_epoch, "best_valid_loss": round(self.best_valid_loss, 6),
                "best_valid_ppl": round(math.exp(self.best_valid_loss), 4)}

    def speed(self) -> dict:
        return {"train_seconds": round(self.seconds, 1),
                "train_tgt_tokens_per_s": round(self.tgt_tokens_per_s, 1), "device": self.device}


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present and says so when it falls back to the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        log.info("device: auto -> cpu (no CUDA device found)")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise S2SError("train.device: cuda requested but no CUDA device is available; "
                       "set train.device to auto or cpu")
    return torch.device(name)


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads or os.cpu_count() or 1)


def build_model(config: ModelConfig, vocabs: Vocabs) -> Seq2Seq:
    return Seq2Seq(config, vocabs.src.get_piece_size(), vocabs.tgt.get_piece_size())


def save_checkpoint(path: Path, model: Seq2Seq, params: Params, spm_dir: Path, **extra) -> None:
    """Write weights + config + vocabulary path + extras to ``path`` through a .part file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    torch.save({"model": model.state_dict(), "model_config": dataclasses.asdict(params.model),
                "params": params_to_dict(params), "spm_dir": str(spm_dir), **extra}, part)
    os.replace(part, path)


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


def make_scheduler(optimizer: torch.optim.Optimizer,
                   config: TrainConfig) -> Optional[torch.optim.lr_scheduler.ReduceLROnPlateau]:
    """The per-epoch learning-rate schedule, stepped on the valid loss (None = constant)."""
    if config.lr_schedule == "constant":
        return None
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=config.lr_decay, patience=config.lr_patience, min_lr=config.min_lr)


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


def train(params: Params, train_data: ParallelData, valid_data: ParallelData, vocabs: Vocabs,
          spm_dir: Path, model_path: Path, logger: Optional[EpochLogger] = None) -> TrainResult:
    """Train until ``max_epochs`` or ``patience`` epochs without a better valid loss.

    The best model (by valid loss) is written atomically to ``model_path``.
    """
    config: TrainConfig = params.train
    device = resolve_device(config.device)
    set_threads(config.threads)
    torch.manual_seed(config.seed)
    model = build_model(params.model, vocabs).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = make_scheduler(optimizer, config)
    log.info("model: %s parameters; device %s; %d training pairs",
             f"{model.num_parameters():,}", device, len(train_data))

    best_loss, best_epoch, bad_epochs, step, epoch = math.inf, 0, 0, 0, 0
    train_seconds, train_tokens = 0.0, 0
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        rng = np.random.default_rng([config.seed, epoch])
        batches = token_batches(train_data.src_lens, train_data.tgt_lens, config.batch_tokens, rng)
        epoch_loss, epoch_tokens, started = 0.0, 0, time.perf_counter()
        for indices in tqdm(batches, desc=f"epoch {epoch}", disable=None, leave=False):
            batch = collate(train_data, indices).to(device)
            n_tokens = batch.n_tgt_tokens
            loss = model.token_losses(batch.src, batch.src_lens, batch.tgt_in, batch.tgt_out,
                                      config.label_smoothing).sum()
            optimizer.zero_grad(set_to_none=True)
            (loss / n_tokens).backward()
            if config.clip_grad > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip_grad)
            optimizer.step()
            step += 1
            epoch_loss += loss.item()
            epoch_tokens += n_tokens
        seconds = time.perf_counter() - started
        train_seconds += seconds
        train_tokens += epoch_tokens
        valid_loss = validation_loss(model, valid_data, config.batch_tokens, device)
        improved = valid_loss < best_loss
        if improved:
            best_loss, best_epoch, bad_epochs = valid_loss, epoch, 0
            save_checkpoint(model_path, model, params, spm_dir, step=step, epoch=epoch,
                            valid_loss=valid_loss)
        else:
            bad_epochs += 1
        record = {"train/loss": epoch_loss / epoch_tokens, "valid/loss": valid_loss,
                  "valid/ppl": math.exp(valid_loss), "tokens_per_s": epoch_tokens / seconds,
                  "lr": optimizer.param_groups[0]["lr"]}
        log.info("epoch %d: train loss %.4f, valid loss %.4f (ppl %.2f)%s, %.0f tgt tokens/s, %.0f s",
                 epoch, record["train/loss"], valid_loss, record["valid/ppl"],
                 " *best*" if improved else "", record["tokens_per_s"], seconds)
        if logger is not None:
            logger.log_epoch(epoch, record)
        if scheduler is not None:
            scheduler.step(valid_loss)
        if bad_epochs >= config.patience:
            log.info("early stopping: no better valid loss for %d epochs", bad_epochs)
            break
    return TrainResult(params=model.num_parameters(), epochs=epoch, steps=step, best_epoch=best_epoch,
                       best_valid_loss=best_loss, seconds=train_seconds,
                       tgt_tokens_per_s=train_tokens / max(train_seconds, 1e-9), device=str(device))
