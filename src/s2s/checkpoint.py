"""Model files and resume checkpoints: written atomically, loaded with their params.

``models/model.pt`` is self-contained (weights, params, SentencePiece models),
so it translates on its own. ``models/last.pt`` holds everything training
needs to continue, with a fingerprint of the params and data it belongs to.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import pickle
import zipfile
from pathlib import Path
from typing import Optional

import torch

from s2s.atomic import save_torch
from s2s.config import ModelConfig, Params, params_to_dict
from s2s.errors import S2SError
from s2s.model import Seq2Seq
from s2s.model.ensemble import Ensemble
from s2s.subword import Vocabs
from s2s.tensors import ParallelData

log = logging.getLogger(__name__)

# Train params a resume checkpoint need not match: they change how fast, not what, training computes.
# (nproc is checked on its own: a resumed run must have the world size the checkpoint records.)
NOT_FINGERPRINTED = ("threads", "checkpoint_every", "nproc")


def save_checkpoint(payload: dict, path: Path) -> None:
    """``torch.save`` through a .part file renamed when complete (see :func:`save_torch`)."""
    save_torch(payload, path)


def save_model(path: Path, state: dict, params: Params, vocabs: Vocabs, **extra) -> None:
    """Write a self-contained model: weights, params, SentencePiece models, extras."""
    save_checkpoint({"model": state, "model_config": dataclasses.asdict(params.model),
                     "params": params_to_dict(params), "spm": vocabs.to_protos(), **extra}, path)


def load_checkpoint(path: Path, device: torch.device | str) -> dict:
    """A checkpoint dict, unpickled with ``weights_only=True``: tensors, numbers, strings, bytes and
    plain containers only, so a crafted file cannot run code. Anything else is one clear error."""
    damaged = S2SError(f"{path}: cannot be read as a checkpoint; it is damaged or not a torch file: "
                       "train it again or copy it whole")
    if not zipfile.is_zipfile(path):  # every torch.save since torch 1.6 writes a zip archive
        raise damaged
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        raise S2SError(f"{path}: not an s2s checkpoint that loads safely (it holds objects other than "
                       "tensors and plain data, whose loading could run code); use a model s2s wrote") from None
    except (RuntimeError, EOFError, OSError):
        raise damaged from None


def load_model(path: Path, device: torch.device) -> tuple[Seq2Seq, dict]:
    """The model of a checkpoint, in eval mode on ``device``, and the checkpoint dict."""
    if not Path(path).exists():
        raise S2SError(f"{path}: model checkpoint not found; train one with `dvc repro train`")
    checkpoint = load_checkpoint(path, device)
    if "model_config" not in checkpoint or "spm" not in checkpoint:
        what = ("a resume checkpoint (models/last.pt), not a model" if "progress" in checkpoint
                else "a torch file, but not an s2s model (no model_config or SentencePiece models in it)")
        raise S2SError(f"{path}: {what}; give the models/model.pt that training writes")
    config = ModelConfig(**checkpoint["model_config"])
    state = checkpoint["model"]
    refuse_non_finite(state, path)
    model = Seq2Seq(config, state["encoder.embed.weight"].size(0), state["decoder.embed.weight"].size(0))
    model.load_state_dict(state)
    return model.to(device).eval(), checkpoint


def load_models(paths: list[Path], device: torch.device) -> tuple["Seq2Seq | Ensemble", dict]:
    """One model (one path) or the :class:`Ensemble` of several, with the first one's checkpoint
    dict (its params and SentencePiece models serve them all). Every member must carry the same
    SentencePiece models: ids mean the same pieces only then."""
    if not paths:
        raise S2SError("no model given; name at least one model file")
    loaded = [load_model(path, device) for path in paths]
    if len(loaded) == 1:
        return loaded[0]
    first_spm = loaded[0][1]["spm"]
    for path, (_, checkpoint) in zip(paths[1:], loaded[1:]):
        if checkpoint["spm"] != first_spm:
            raise S2SError(f"{path}: its SentencePiece models differ from those of {paths[0]}; an ensemble "
                           "combines models trained on the same vocabulary (the same spm stage output)")
    return Ensemble([model for model, _ in loaded]).eval(), loaded[0][1]


def refuse_non_finite(state: dict, path: Path) -> None:
    """Raise when a state dict holds NaN or infinite weights (a diverged run): name the file and the fix."""
    bad = [name for name, tensor in state.items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if bad:
        raise S2SError(f"{path}: {len(bad)} weight tensors hold NaN or infinite values (first: {bad[0]}): it "
                       "comes from a diverged run; delete it and train again with a lower train.lr")


def fingerprint(params: Params, train_data: ParallelData) -> str:
    """What a resume checkpoint must match: the params training uses (those ``dvc.yaml`` lists for
    the stage, less :data:`NOT_FINGERPRINTED`) and the training data."""
    train = {k: v for k, v in dataclasses.asdict(params.train).items() if k not in NOT_FINGERPRINTED}
    decoding = {k: getattr(params.eval, k) for k in ("max_len_a", "max_len_b", "batch_size")}  # valid BLEU
    blob = json.dumps({"model": dataclasses.asdict(params.model), "train": train, "eval": decoding},
                      sort_keys=True).encode()
    digest = hashlib.sha256(blob)
    digest.update(train_data.digest.encode())  # recorded by tensorize: the ids are not read
    return digest.hexdigest()


def require_world_size(checkpoint: dict, world_size: int, last_path: Path) -> None:
    """Refuse to resume ``checkpoint`` in a world of another size: the ranks' shares of every batch,
    their RNG states and the sums' rounding belong to the world size that wrote it."""
    written_by = checkpoint.get("world_size", 1)
    if written_by != world_size:
        raise S2SError(f"{last_path}: written by a training of {written_by} process(es), and this one has "
                       f"{world_size}: it resumes exactly only in a world of the same size. Run it with "
                       f"{written_by} process(es) (train.nproc per node) to continue, or delete {last_path} "
                       "to train anew")


def resume_point(last_path: Path, params: Params, train_data: ParallelData) -> Optional[dict]:
    """The resume checkpoint if it exists, matches these params and data, and is unfinished.

    Loaded on the CPU: the model and optimizer copy their state to the device, and
    the RNG state and the kept epoch weights belong on the CPU.
    """
    if not last_path.exists():
        return None
    checkpoint = load_checkpoint(last_path, "cpu")
    if "model" not in checkpoint or "progress" not in checkpoint:
        raise S2SError(f"{last_path}: not an s2s resume checkpoint; delete it (or move it away) to train anew")
    if checkpoint.get("fingerprint") != fingerprint(params, train_data) or checkpoint["progress"]["stopped"]:
        log.info("%s belongs to other params or a finished run; training from scratch", last_path)
        return None
    refuse_non_finite(checkpoint["model"], last_path)
    return checkpoint
