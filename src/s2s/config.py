"""Typed params: `params.yaml` loaded into frozen dataclasses and validated.

Every knob of the pipeline is a field here. Loading checks that every key is
known (with a "did you mean" for typos), that every value has the right type,
and that it lies in its range or among its choices. Errors name the key path:
``model.hiden: unknown parameter; did you mean model.hidden?``.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from s2s.errors import S2SError


MIN_BATCH_TOKENS = 16  # the smallest token budget of a batch, or of one chunk of a joined batch


class ConfigError(S2SError):
    """An invalid params file: unknown key, wrong type, or value out of range."""


def _knob(default: Any, *, choices: tuple = (), low: float | None = None,
          high: float | None = None, doc: str = "") -> Any:
    """A dataclass field with validation metadata (choices, inclusive range)."""
    meta = {"choices": choices, "low": low, "high": high, "doc": doc}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class CorpusFiles:
    """A user's own parallel split: a source and a target file (path or URL, plain or .gz)."""

    src: str = _knob("", doc="path or URL of the source-side file")
    tgt: str = _knob("", doc="path or URL of the target-side file")
    src_sha256: Optional[str] = _knob(None, doc="expected sha256 of the source file, or null")
    tgt_sha256: Optional[str] = _knob(None, doc="expected sha256 of the target file, or null")


@dataclass(frozen=True)
class DataConfig:
    """Which corpus and languages (stages download, clean, tensorize, evaluate)."""

    corpus: str = _knob("multi30k", doc="registered corpus name, or 'custom' for data.files")
    src: str = _knob("de", doc="source language code")
    tgt: str = _knob("en", doc="target language code")
    test_sets: list[str] = _knob(["test_2016_flickr"], doc="test splits to evaluate")
    max_train_pairs: int = _knob(0, low=0, doc="keep only the first N training pairs (0 = all)")
    files: dict[str, CorpusFiles] = _knob({}, doc="custom corpus: split name -> files")


@dataclass(frozen=True)
class CleanConfig:
    """Normalisation of every split and the filters of the training pairs (stage clean)."""

    normalization: str = _knob("NFC", choices=("NFC", "NFKC"), doc="Unicode normal form")
    max_len: int = _knob(80, low=1, doc="drop training pairs with a side longer than this (words)")
    max_ratio: float = _knob(3.0, low=1.0, doc="drop training pairs whose length ratio exceeds this")
    dedupe: bool = _knob(True, doc="drop repeated training pairs")


@dataclass(frozen=True)
class SpmConfig:
    """The SentencePiece model (stage spm)."""

    vocab_size: int = _knob(8000, low=16, high=1_000_000, doc="SentencePiece vocabulary size")
    model_type: str = _knob("unigram", choices=("unigram", "bpe"), doc="SentencePiece algorithm")
    joint: bool = _knob(True, doc="one vocabulary for both languages")
    character_coverage: float = _knob(1.0, low=0.9, high=1.0, doc="share of characters covered")
    seed: int = _knob(42, low=0, doc="SentencePiece random seed")


@dataclass(frozen=True)
class ModelConfig:
    """The encoder-decoder architecture (stages train, evaluate)."""

    cell: str = _knob("gru", choices=("gru", "lstm"), doc="recurrent cell")
    attention: str = _knob("bahdanau", choices=("bahdanau", "luong", "none"),
                           doc="bahdanau (additive, before the RNN, input feeding), luong (after the RNN), none")
    attention_score: str = _knob("general", choices=("general", "dot", "additive"),
                                 doc="Luong score function; additive needs input_feeding")
    input_feeding: bool = _knob(False, doc="luong: feed the previous attentional vector to the RNN (Luong et al. "
                                           "2015, Joey NMT's recurrent decoder); steps run one at a time")
    emb: int = _knob(256, low=8, high=8192, doc="embedding size")
    hidden: int = _knob(512, low=8, high=8192,
                        doc="decoder state size; a bidirectional encoder has hidden/2 per direction")
    enc_layers: int = _knob(1, low=1, high=16, doc="encoder RNN layers")
    dec_layers: int = _knob(1, low=1, high=16, doc="decoder RNN layers")
    bidirectional: bool = _knob(True, doc="bidirectional encoder")
    dropout: float = _knob(0.3, low=0.0, high=0.9, doc="dropout on embeddings, between layers, before output")
    tie_embeddings: bool = _knob(True, doc="tie target embedding and output projection (via an emb-size bottleneck)")
    share_src_tgt_embeddings: bool = _knob(False, doc="the source embedding is the target one (needs spm.joint)")
    init: str = _knob("pytorch", choices=("pytorch", "uniform"),
                      doc="initial weights: pytorch (each layer's default, U(+-1/sqrt(fan_in))) or uniform (every "
                          "weight U(+-init_scale), embeddings N(0, 1), output bias 0; Joey NMT's uniform initializer)")
    init_scale: float = _knob(0.0, low=0.0, high=1.0, doc="uniform init's bound (0 = 1/sqrt(hidden))")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation, batching, early stopping, checkpoints and the device (stage train)."""

    seed: int = _knob(1234, low=0, doc="seed of every random generator")
    device: str = _knob("auto", choices=("auto", "cpu", "cuda"), doc="auto = cuda when present")
    precision: str = _knob("auto", choices=("auto", "fp32", "bf16"), doc="auto = bf16 autocast on CUDA, fp32 on CPU")
    threads: int = _knob(0, low=0, doc="CPU threads for torch (0 = all cores)")
    batch_tokens: int = _knob(2500, low=MIN_BATCH_TOKENS, doc="padded tokens per batch, length-bucketed "
                                                               "(summed over its chunks with buckets_per_batch > 1)")
    bucket_pool: int = _knob(0, low=0, doc="sort by length within random pools of this many batches, new "
                                           "each epoch (0 = sort the whole corpus: least padding)")
    buckets_per_batch: int = _knob(1, low=1, doc="a batch joins this many length-sorted chunks of "
                                                 "batch_tokens / k, drawn at random: lengths mix within it")
    accumulate: int = _knob(1, low=1, doc="batches per optimizer step (gradient accumulation)")
    max_epochs: int = _knob(35, low=1, doc="stop after this many epochs")
    lr: float = _knob(0.002, low=1e-7, high=1.0, doc="Adam learning rate")
    lr_schedule: str = _knob("plateau", choices=("plateau", "inverse_sqrt", "constant"),
                             doc="plateau: lr *= lr_decay when the valid metric stalls; inverse_sqrt: warmup")
    lr_decay: float = _knob(0.5, low=0.01, high=1.0, doc="factor of the plateau schedule")
    lr_patience: int = _knob(0, low=0, doc="epochs without improvement before the lr decays")
    min_lr: float = _knob(1e-5, low=0.0, doc="the plateau schedule never goes below this")
    warmup_steps: int = _knob(1000, low=1, doc="linear warmup of the inverse_sqrt schedule")
    patience: int = _knob(3, low=1, doc="early stopping: epochs without a better valid metric")
    early_stop_metric: str = _knob("loss", choices=("loss", "bleu"),
                                   doc="valid loss, or greedy valid BLEU, decides the best epoch")
    clip_grad: float = _knob(1.0, low=0.0, doc="clip the gradient norm to this (0 = off)")
    label_smoothing: float = _knob(0.1, low=0.0, high=0.9, doc="label smoothing of the loss")
    checkpoint_every: int = _knob(500, low=0, doc="steps between resume checkpoints (0 = epoch ends only)")
    average_last: int = _knob(5, low=0, high=100,
                              doc="average the weights of the last k epochs; kept when valid says it beats "
                                  "the best epoch (0 = off)")


@dataclass(frozen=True)
class EvalConfig:
    """Decoding of valid and test sets (stage evaluate; the length limit also in training's valid BLEU)."""

    beam: int = _knob(5, low=1, high=100, doc="beam size (1 = greedy)")
    len_penalty: float = _knob(1.0, low=0.0, high=5.0, doc="GNMT length penalty alpha (0 = none)")
    batch_size: int = _knob(64, low=1, doc="sentences per decoding batch")
    max_len_a: float = _knob(1.5, low=0.0, doc="max output length = a * src_len + b")
    max_len_b: int = _knob(10, low=0, doc="max output length = a * src_len + b")


@dataclass(frozen=True)
class Params:
    data: DataConfig = field(default_factory=DataConfig)
    clean: CleanConfig = field(default_factory=CleanConfig)
    spm: SpmConfig = field(default_factory=SpmConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def _read_params_file(path: Path) -> Any:
    """The parsed YAML of a params file (``{}`` when empty); a missing file or bad YAML is a ConfigError."""
    if not path.exists():
        raise ConfigError(f"{path}: params file not found; run from the project root or pass --params")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err}); fix the syntax") from None


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file; raise :class:`ConfigError` naming the bad key."""
    return params_from_dict(_read_params_file(Path(path)), source=str(path))


def load_params_with_overrides(path: str | Path, overrides: list[str]) -> Params:
    """Like :func:`load_params`, with ``key.path=value`` overrides (values parsed as YAML), as in `dvc exp run -S`."""
    path = Path(path)
    raw = _read_params_file(path)
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {override!r}: expected key.path=value, e.g. model.hidden=256")
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {override!r}: {part} is not a section")
        node[leaf] = yaml.safe_load(value)
    return params_from_dict(raw, source=str(path))


def params_from_dict(raw: Any, source: str = "params") -> Params:
    """Build :class:`Params` from a nested dict, validating every key and value."""
    try:
        params = _build(Params, raw, "")
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    _check_cross_fields(params, source)
    return params


def params_to_dict(params: Params) -> dict:
    """The inverse of :func:`params_from_dict` (plain YAML-able types)."""
    return dataclasses.asdict(params)


def _check_cross_fields(params: Params, source: str) -> None:
    if params.data.src == params.data.tgt:
        raise ConfigError(f"{source}: data.tgt: equals data.src ({params.data.src!r}); "
                          "pick two different languages")
    if params.model.bidirectional and params.model.hidden % 2:
        raise ConfigError(f"{source}: model.hidden: must be even with model.bidirectional "
                          f"(hidden/2 per direction), got {params.model.hidden}")
    if params.model.share_src_tgt_embeddings and not params.spm.joint:
        raise ConfigError(f"{source}: model.share_src_tgt_embeddings: needs one vocabulary for both languages; "
                          "set spm.joint: true or model.share_src_tgt_embeddings: false")
    if params.model.input_feeding and params.model.attention != "luong":
        raise ConfigError(f"{source}: model.input_feeding: feeds Luong's attentional vector; set model.attention: "
                          f"luong, or model.input_feeding: false ({params.model.attention!r} "
                          f"{'feeds its context already' if params.model.attention == 'bahdanau' else 'has no attention'})")
    if params.model.attention_score == "additive" and not (params.model.attention == "luong"
                                                           and params.model.input_feeding):
        raise ConfigError(f"{source}: model.attention_score: additive is scored one step at a time; set "
                          "model.attention: luong with model.input_feeding: true, or use general or dot")
    chunk_tokens = params.train.batch_tokens // params.train.buckets_per_batch
    if chunk_tokens < MIN_BATCH_TOKENS:
        raise ConfigError(f"{source}: train.buckets_per_batch: {params.train.buckets_per_batch} chunks of "
                          f"train.batch_tokens {params.train.batch_tokens} leave {chunk_tokens} tokens each, "
                          f"below {MIN_BATCH_TOKENS}; lower train.buckets_per_batch or raise train.batch_tokens")
    if params.train.average_last == 1:
        raise ConfigError(f"{source}: train.average_last: 1 averages a single epoch; "
                          "use 0 (off) or a k of at least 2")


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'params'}: expected a mapping, "
                          f"got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in raw.items():
        path = f"{prefix}{key}"
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean {prefix}{close[0]}?" if close else \
                f"; known keys: {', '.join(prefix + k for k in fields)}"
            raise ConfigError(f"{path}: unknown parameter{hint}")
        values[key] = _coerce(hints[key], value, path, fields[key].metadata)
    return cls(**values)


def _coerce(hint: Any, value: Any, path: str, meta: typing.Mapping) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType) and type(None) in args:
        if value is None:
            return None
        inner = next(a for a in args if a is not type(None))
        return _coerce(inner, value, path, meta)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path + ".")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {value!r}")
        return [_coerce(args[0], v, f"{path}[{i}]", {}) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return {str(k): _coerce(args[1], v, f"{path}.{k}", {}) for k, v in value.items()}
    return _check_scalar(hint, value, path, meta)


def _check_scalar(hint: type, value: Any, path: str, meta: typing.Mapping) -> Any:
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[hint]
    if not ok:
        raise ConfigError(f"{path}: expected {hint.__name__}, got {value!r} ({type(value).__name__})")
    value = hint(value)
    if value != value:  # NaN passes every range check
        raise ConfigError(f"{path}: {value!r} is not a number; give a finite value")
    choices = meta.get("choices") or ()
    if choices and value not in choices:
        raise ConfigError(f"{path}: {value!r} is not one of {', '.join(map(str, choices))}")
    low, high = meta.get("low"), meta.get("high")
    if low is not None and value < low or high is not None and value > high:
        bounds = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ConfigError(f"{path}: {value!r} is out of range; expected {bounds}")
    return value
