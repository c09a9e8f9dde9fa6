"""Typed params: `params.yaml` loaded into frozen dataclasses and validated.

Every knob of the pipeline is a field here. Loading checks that every key is
known (with a "did you mean" for typos), that every value has the right type,
and that it lies in its range or among its choices. Errors name the key path:
``model.hiden: unknown parameter; did you mean model.hidden?``. Duplicate keys and YAML 1.1's
surprises (``no`` is a boolean, ``010`` octal, ``1e-3`` a string) are caught or fixed; names that
become file names under data/ must be plain names; combinations that cannot work are refused.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from s2s.errors import ConfigError
from s2s.params_yaml import apply_overrides, read_params_file


MIN_BATCH_TOKENS = 16  # the smallest token budget of a batch, or of one chunk of a joined batch


def _knob(default: Any, *, choices: tuple = (), low: float | None = None,
          high: float | None = None, doc: str = "") -> Any:
    """A dataclass field with validation metadata (choices, inclusive range)."""
    meta = {"choices": choices, "low": low, "high": high, "doc": doc}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class CorpusFiles:
    """A user's own parallel split: a source and a target file, or one TSV file (``source<TAB>target`` per line).

    Give either ``src`` and ``tgt`` or ``tsv``, never both. Each is a path or a URL, plain or compressed
    (gzip, xz or bzip2, told by the file's first bytes, whatever its name).
    """

    src: str = _knob("", doc="path or URL of the source-side file")
    tgt: str = _knob("", doc="path or URL of the target-side file")
    src_sha256: Optional[str] = _knob(None, doc="expected sha256 of the source file, or null")
    tgt_sha256: Optional[str] = _knob(None, doc="expected sha256 of the target file, or null")
    tsv: str = _knob("", doc="instead of src and tgt: path or URL of one file of source<TAB>target lines")
    tsv_sha256: Optional[str] = _knob(None, doc="expected sha256 of the TSV file, or null")


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
    max_chars: int = _knob(1000, low=1, doc="drop training pairs with a side longer than this (characters, "
                                            "however few its words)")
    max_ratio: float = _knob(3.0, low=1.0, doc="drop training pairs whose length ratio exceeds this")
    dedupe: bool = _knob(True, doc="drop repeated training pairs")


@dataclass(frozen=True)
class SpmConfig:
    """The SentencePiece model (stage spm)."""

    vocab_size: int = _knob(8000, low=16, high=1_000_000, doc="SentencePiece vocabulary size")
    model_type: str = _knob("unigram", choices=("unigram", "bpe"), doc="SentencePiece algorithm")
    joint: bool = _knob(True, doc="one vocabulary for both languages")
    character_coverage: float = _knob(1.0, low=0.9, high=1.0, doc="share of characters covered")
    seed: int = _knob(42, low=0, doc="SentencePiece random seed (also of the sentence sample)")
    input_sentence_size: int = _knob(1_000_000, low=0,
                                     doc="train on a seeded sample of this many sentences when the training "
                                         "text has more (0 = every sentence); bounds spm's time and memory")
    threads: int = _knob(1, low=0, high=1024,
                         doc="SentencePiece training threads (0 = all cores); the model is byte-identical "
                             "across runs with the same count but differs between counts (unigram scores, "
                             "so tokenisation; bpe only in the recorded count), so 0 ties it to the "
                             "machine; 1 gives the committed Multi30k model")


@dataclass(frozen=True)
class TensorizeConfig:
    """Token ids of every split, and the length limit of sentences (stage tensorize; also s2s translate)."""

    max_pieces: int = _knob(250, low=1, high=100_000,
                            doc="valid and test sentences longer than this (SentencePiece pieces, either side) are "
                                "truncated with a warning naming the line, never dropped; also the default input "
                                "limit of s2s translate")
    workers: int = _knob(0, low=0, high=256, doc="processes encoding the text in parallel (0 = one per core); "
                         "the output is the same bytes whatever the number")


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
    threads: int = _knob(0, low=0, doc="CPU threads for torch, per process (0 = the cores of the node shared "
                                       "by its processes)")
    nproc: int = _knob(1, low=1, doc="training processes on this node, data-parallel (DDP; 1 = one process): "
                                     "one per GPU, or on the CPU each with its threads")
    batch_tokens: int = _knob(2500, low=MIN_BATCH_TOKENS, doc="padded tokens per batch, length-bucketed "
                                                               "(summed over its chunks with buckets_per_batch > 1)")
    bucket_pool: int = _knob(0, low=0, doc="sort by length within random pools of this many batches, new "
                                           "each epoch (0 = sort the whole corpus: least padding)")
    buckets_per_batch: int = _knob(1, low=1, doc="a batch joins this many length-sorted chunks of "
                                                 "batch_tokens / k, drawn at random: lengths mix within it")
    accumulate: int = _knob(1, low=1, doc="batches per optimizer step (gradient accumulation)")
    max_epochs: int = _knob(35, low=1, doc="stop after this many epochs")
    max_steps: int = _knob(0, low=0, doc="stop after this many updates, mid-epoch if need be (0 = no limit)")
    valid_every: int = _knob(0, low=0, doc="validate every this many updates (0 = at the end of each epoch); "
                             "patience, lr_patience and average_last then count these validations")
    lr: float = _knob(0.002, low=1e-7, high=1.0, doc="Adam learning rate")
    lr_schedule: str = _knob("plateau", choices=("plateau", "inverse_sqrt", "constant"),
                             doc="plateau: lr *= lr_decay when the valid metric stalls; inverse_sqrt: warmup")
    lr_decay: float = _knob(0.5, low=0.01, high=1.0, doc="factor of the plateau schedule")
    lr_patience: int = _knob(0, low=0, doc="validations (epochs) without improvement before the lr decays")
    min_lr: float = _knob(1e-5, low=0.0, doc="the plateau schedule never goes below this")
    warmup_steps: int = _knob(1000, low=1, doc="linear warmup of the inverse_sqrt schedule")
    patience: int = _knob(3, low=1, doc="early stopping: validations (epochs) without a better valid metric")
    early_stop_metric: str = _knob("loss", choices=("loss", "bleu"),
                                   doc="valid loss, or greedy valid BLEU, decides the best epoch")
    clip_grad: float = _knob(1.0, low=0.0, doc="clip the gradient norm to this (0 = off)")
    label_smoothing: float = _knob(0.1, low=0.0, high=0.9, doc="label smoothing of the loss")
    checkpoint_every: int = _knob(500, low=0, doc="steps between resume checkpoints (0 = epoch ends only)")
    average_last: int = _knob(5, low=0, high=100,
                              doc="average the weights of the last k validations (epochs); kept when valid "
                                  "says it beats the best one (0 = off)")


@dataclass(frozen=True)
class EnsembleMember:
    """A trained model file the evaluate stage combines with this experiment's ``models/model.pt``."""

    path: str = _knob("", doc="the model file, inside the project (e.g. another experiment's models/model.pt, "
                              "copied and `dvc add`ed)")
    sha256: str = _knob("", doc="its sha256 (what sha256sum prints): the params name the file's content, so a "
                                "changed file is refused and a new one reruns the stage")


@dataclass(frozen=True)
class EvalConfig:
    """Decoding of valid and test sets (stage evaluate; the length limit also in training's valid BLEU)."""

    beam: int = _knob(5, low=1, high=100, doc="beam size (1 = greedy)")
    len_penalty: float = _knob(1.0, low=0.0, high=5.0, doc="GNMT length penalty alpha (0 = none)")
    batch_size: int = _knob(64, low=1, doc="sentences per decoding batch")
    max_len_a: float = _knob(1.5, low=0.0, doc="max output length = a * src_len + b")
    max_len_b: int = _knob(10, low=0, doc="max output length = a * src_len + b")
    ensemble: list[EnsembleMember] = _knob([], doc="models decoded together with models/model.pt, the mean of "
                                                   "their probabilities at every step ([] = the model alone)")


@dataclass(frozen=True)
class Params:
    data: DataConfig = field(default_factory=DataConfig)
    clean: CleanConfig = field(default_factory=CleanConfig)
    spm: SpmConfig = field(default_factory=SpmConfig)
    tensorize: TensorizeConfig = field(default_factory=TensorizeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


# Names that become file names under data/ (data/raw/<corpus>/<split>.<lang>, data/clean/<split>.src, ...).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_NAME_RULE = "use letters, digits, '_' and '-' (it names files under data/)"
_SHA256 = re.compile(r"[0-9a-f]{64}")
def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate a params file; raise :class:`ConfigError` naming the bad key."""
    raw, words = read_params_file(Path(path))
    return _params_from_raw(raw, str(path), words)


def load_params_with_overrides(path: str | Path, overrides: list[str]) -> Params:
    """Like :func:`load_params`, with ``key.path=value`` overrides (values parsed as YAML), as in `dvc exp run -S`."""
    raw, words = apply_overrides(*read_params_file(Path(path)), overrides)
    return _params_from_raw(raw, str(path), words)


def params_from_dict(raw: Any, source: str = "params") -> Params:
    """Build :class:`Params` from a nested dict, validating every key and value.

    Sections or keys that are missing get their defaults: the params of a model saved before a knob
    existed still load."""
    return _params_from_raw(raw, source, {})


def _params_from_raw(raw: Any, source: str, words: typing.Mapping[str, str]) -> Params:
    """:func:`params_from_dict`, with ``words``: the YAML source text of non-string scalars, by param path."""
    try:
        params = _build(Params, raw, "", words)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    _check_names(params, source)
    _check_cross_fields(params, source)
    return params


def params_to_dict(params: Params) -> dict:
    """The inverse of :func:`params_from_dict` (plain YAML-able types)."""
    return dataclasses.asdict(params)


def _check_name(value: str, path: str, what: str, source: str) -> None:
    if not _NAME.fullmatch(value):
        raise ConfigError(f"{source}: {path}: {value!r} is not a valid {what}; {_NAME_RULE}")


def _check_names(params: Params, source: str) -> None:
    """Names that become file names must stay file names under data/; test sets must not reuse a split."""
    data = params.data
    _check_name(data.corpus, "data.corpus", "corpus name", source)
    _check_name(data.src, "data.src", "language code", source)
    _check_name(data.tgt, "data.tgt", "language code", source)
    for split in data.files:
        _check_name(split, f"data.files.{split}" if _NAME.fullmatch(split) else "data.files",
                    "split name", source)
    seen: dict[str, int] = {}
    for i, split in enumerate(data.test_sets):
        path = f"data.test_sets[{i}]"
        _check_name(split, path, "split name", source)
        if split.lower() in ("train", "valid"):
            what = ("the training split, not a test set: its files under data/ would be overwritten"
                    if split.lower() == "train" else
                    "the validation split, which is always evaluated: its outputs would be written twice")
            case = "" if split in ("train", "valid") else \
                " (names that differ only in case are one file on some systems)"
            raise ConfigError(f"{source}: {path}: {split!r} is {what}{case}; remove it")
        if split.lower() in seen:
            raise ConfigError(f"{source}: {path}: {split!r} repeats data.test_sets[{seen[split.lower()]}] "
                              "(names that differ only in case share files on some systems); list each test "
                              "set once")
        seen[split.lower()] = i
    for split, files in data.files.items():
        _check_corpus_files(files, split, source)
    for i, member in enumerate(params.eval.ensemble):
        where = f"{source}: eval.ensemble[{i}]"
        if not member.path:
            raise ConfigError(f"{where}.path: no model file given; give the path of a model.pt in the project")
        if not _SHA256.fullmatch(member.sha256):
            raise ConfigError(f"{where}.sha256: {member.sha256!r} is not a sha256; give 64 lowercase hex digits "
                              f"(`sha256sum {member.path}` prints them)")


def _check_corpus_files(files: CorpusFiles, split: str, source: str) -> None:
    """One form per split (``tsv``, or ``src`` and ``tgt``); each sha256 is 64 hex digits, of a file given."""
    key = f"data.files.{split}"
    where = f"{source}: {key}"
    pair = [side for side in ("src", "tgt") if getattr(files, side)]
    forms = "give either src and tgt (a file per side) or tsv (one file, source<TAB>target per line)"
    if files.tsv and pair:
        raise ConfigError(f"{where}: has both tsv and {' and '.join(pair)}; {forms}, not both")
    if not files.tsv and len(pair) < 2:
        missing = "no file" if not pair else f"no {'tgt' if pair == ['src'] else 'src'} for its {pair[0]}"
        raise ConfigError(f"{where}: {missing}; {forms}")
    for side in ("src", "tgt", "tsv"):
        digest = getattr(files, f"{side}_sha256")
        if digest is not None and not _SHA256.fullmatch(digest):
            raise ConfigError(f"{where}.{side}_sha256: {digest!r} is not a sha256; "
                              "give 64 lowercase hex digits (what sha256sum prints), or null")
        if digest is not None and not getattr(files, side):
            raise ConfigError(f"{where}.{side}_sha256: checks no file, {key}.{side} is not given; "
                              "remove it, or give the file it belongs to")


def _check_cross_fields(params: Params, source: str) -> None:
    if params.data.src.lower() == params.data.tgt.lower():
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
    train = params.train
    if train.lr_schedule == "plateau" and train.min_lr > train.lr:
        raise ConfigError(f"{source}: train.min_lr: {train.min_lr} is above train.lr {train.lr}, so the plateau "
                          "schedule could never lower the lr; set train.min_lr below train.lr, or "
                          "train.lr_schedule: constant")
    if train.precision == "bf16" and train.device == "cpu":
        raise ConfigError(f"{source}: train.precision: bf16 autocast needs CUDA, and train.device is cpu; "
                          "set train.precision: auto or fp32, or train.device: cuda")
    a, b, longest = params.eval.max_len_a, params.eval.max_len_b, params.tensorize.max_pieces
    if math.floor(a * longest) + b < 1:
        raise ConfigError(f"{source}: eval.max_len_b: {b} with eval.max_len_a: {a} allows no output token, even "
                          f"for a source of tensorize.max_pieces ({longest}) pieces (max output length = "
                          "a * src_len + b): every translation would be empty; raise eval.max_len_b (e.g. 10) "
                          "or eval.max_len_a (e.g. 1.5)")


def _kind(value: Any) -> str:
    """The YAML name of ``value``'s type."""
    return {type(None): "null", bool: "bool", int: "int", float: "float", str: "str", list: "list",
            dict: "mapping"}.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    """``repr(value)``, cut to one short line."""
    text = "null" if value is None else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _build(cls: type, raw: Any, prefix: str, words: typing.Mapping[str, str]) -> Any:
    if not isinstance(raw, dict):
        where = prefix.rstrip(".") or "params"
        if raw is None:
            raise ConfigError(f"{where}: empty section (null); give its keys, or remove it to use the defaults")
        raise ConfigError(f"{where}: expected a mapping of keys, got {_show(raw)} ({_kind(raw)})")
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
        values[key] = _coerce(hints[key], value, path, fields[key].metadata, words)
    return cls(**values)


def _coerce(hint: Any, value: Any, path: str, meta: typing.Mapping, words: typing.Mapping[str, str]) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType) and type(None) in args:
        if value is None:
            return None
        inner = next(a for a in args if a is not type(None))
        return _coerce(inner, value, path, meta, words)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path + ".", words)
    if origin is list:
        if not isinstance(value, list):
            fix = "write [] for none" if value is None else \
                "write [a, b] or one '- a' line per entry" if isinstance(value, dict) else \
                f"write [{value if isinstance(value, str) else repr(words.get(path, str(value)))}] for one entry"
            raise ConfigError(f"{path}: expected a list, got {_show(value)}"
                              f"{'' if value is None else f' ({_kind(value)})'}; {fix}")
        return [_coerce(args[0], v, f"{path}[{i}]", {}, words) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            fix = "; write {} for none" if value is None else ""
            raise ConfigError(f"{path}: expected a mapping, got {_show(value)}"
                              f"{'' if value is None else f' ({_kind(value)})'}{fix}")
        for k in value:
            if not isinstance(k, str):
                why = "a boolean (YAML reads yes, no, on, off as booleans)" if isinstance(k, bool) else "not text"
                raise ConfigError(f"{path}: key {k!r} ({_kind(k)}) is {why}; write the key in quotes")
        return {k: _coerce(args[1], v, f"{path}.{k}", {}, words) for k, v in value.items()}
    return _check_scalar(hint, value, path, meta, words)


def _yaml11_number(word: Optional[str], value: Any) -> Optional[str]:
    """How YAML 1.1 misread ``word`` (the source text) as the number ``value``, if it did: octal, base 60."""
    if word is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    digits = word.lstrip("+-")
    if re.fullmatch(r"0[0-7_]+", digits):
        return f"YAML 1.1 reads {word} as the octal number {value}; write it without the leading 0"
    if ":" in digits:
        return f"YAML 1.1 reads {word} as the base-60 number {value}; write {value}"
    return None


def _check_scalar(hint: type, value: Any, path: str, meta: typing.Mapping, words: typing.Mapping[str, str]) -> Any:
    word = words.get(path)
    name = hint.__name__
    got = f"expected {name}, got {_show(value)} ({_kind(value)})"
    if value is None:
        raise ConfigError(f"{path}: no value (null), a {name} is needed; give one, or remove the key "
                          "to use the default")
    if hint is str:
        if isinstance(value, bool):
            if word is None:
                raise ConfigError(f"{path}: {got}; write the text in quotes: YAML reads "
                                  f"{'yes, on and true' if value else 'no, off and false'} as booleans")
            raise ConfigError(f"{path}: {got}; write '{word}' in quotes: YAML reads {word} as a boolean")
        if isinstance(value, (int, float)):
            word = word or str(value)
            raise ConfigError(f"{path}: {got}; write '{word}' in quotes: YAML reads {word} as a number")
    elif hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: {got}; write true or false, without quotes")
    elif isinstance(value, bool):
        raise ConfigError(f"{path}: {got}; YAML reads {word or str(value).lower()} as a boolean: "
                          f"write a number")
    elif hint is int:
        if isinstance(value, str):
            number = _finite_float(value)
            example = f", e.g. {int(number)}" if number is not None and number.is_integer() else ""
            raise ConfigError(f"{path}: {got}; quote-free integer expected{example}")
        if isinstance(value, float):
            example = f", e.g. {int(value)}" if math.isfinite(value) and value.is_integer() else ""
            raise ConfigError(f"{path}: {got}; a whole number is needed{example}")
    elif hint is float and isinstance(value, str):
        number = _finite_float(value)
        if number is None:  # YAML 1.1 needs a dot in a float (1.0e-3); `lr: 1e-3` and `-S train.lr=1e-3` are text
            raise ConfigError(f"{path}: {got}")
        value = number
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }[hint]
    if not ok:
        raise ConfigError(f"{path}: {got}")
    misread = _yaml11_number(word, value) if hint in (int, float) else None
    if misread:
        raise ConfigError(f"{path}: {misread}")
    value = hint(value)
    if value != value:  # NaN passes every range check
        raise ConfigError(f"{path}: {value!r} is not a number; give a finite value")
    if hint is float and not math.isfinite(value):
        raise ConfigError(f"{path}: {value!r} is not finite; give a finite value")
    choices = meta.get("choices") or ()
    if choices and value not in choices:
        raise ConfigError(f"{path}: {value!r} is not one of {', '.join(map(str, choices))}")
    low, high = meta.get("low"), meta.get("high")
    if low is not None and value < low or high is not None and value > high:
        bounds = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ConfigError(f"{path}: {value!r} is out of range; expected {bounds}")
    return value


def _finite_float(text: str) -> Optional[float]:
    """``float(text)`` when that is a finite number (``'1e-3'``), else None."""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
