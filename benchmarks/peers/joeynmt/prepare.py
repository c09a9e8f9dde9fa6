"""Everything a peer run needs before it trains: s2s's params with the batch budget matched to Joey's,
the test sets both systems decode, Joey's venv and config, and the checks that the two systems build
one model (parameter counts within 2%, equal token ids, and the same log-probabilities, within 1e-3,
from Joey's initial weights)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from environment import WORK, ensure_joey_venv, log
from joey import JOEY_BATCH_TOKENS, joey_config, run_joey, write_vocab
from measure import joey_batch_real_tokens, match_batch_tokens, s2s_batch_real_tokens
from s2s.config import Params, load_params_with_overrides, params_from_dict, params_to_dict
from s2s.subword import Vocabs
from s2s.tensors import ParallelData
from s2s.textio import read_lines
from s2s.train import build_model
from weights import PEER_MODEL, function_gap, s2s_state_from_joey

PARAM_TOLERANCE = 0.02
FUNCTION_TOLERANCE = 1e-3  # log-probability, float32 sums in a different order
# The architecture of issue 6 and the training both sides share, as s2s params (Joey's: joey.yaml.tmpl).
S2S_OVERRIDES = {**{f"model.{key}": value for key, value in PEER_MODEL.items()},
                 "train.lr": 0.001, "train.lr_schedule": "constant", "train.accumulate": 1,
                 "train.device": "cpu", "train.precision": "fp32"}
NEEDED = ("data/clean/train.src", "data/clean/test_2016_flickr.src", "data/spm/spm.model",
          "data/tensors/train", "data/raw/multi30k/test_2016_flickr.en")


@dataclass
class S2SSide:
    """s2s's params with the batch budget matched to Joey's, its vocabularies and training data."""

    params: Params
    vocabs: Vocabs
    train_data: ParallelData
    batch_tokens: int
    joey_target: float  # Joey's real target tokens per batch, replayed over 3 epochs


@dataclass
class Decoding:
    """The test sets both systems decode: lines and batch size by name, (name, batch, beam) specs,
    the references, and the same specs as joey_side.py's ``--decode`` arguments."""

    sets: dict[str, tuple[list[str], int]]
    specs: list[tuple[str, int, int]]
    refs: list[str]
    joey_args: list[str]


@dataclass
class Checked:
    """Joey's side ready to run, and the checks that both systems build one model."""

    python: Path  # Joey's venv
    config: Path  # work/joey.yaml
    vocab_size: int
    joey_params: int
    s2s_model: torch.nn.Module  # holding Joey's initial weights
    joey_start: dict  # Joey's initial weights as an s2s state dict
    function_gap: float
    probe_pairs: int


def check_root(root: Path) -> None:
    """Stop unless the data stages have run in ``root``."""
    for needed in NEEDED:
        if not (root / needed).exists():
            sys.exit(f"{root / needed}: missing; run the data stages there first (dvc repro tensorize)")


def prepare_s2s(root: Path, threads: int, overrides: list[str], joey_batching: bool,
                fixed_batch_tokens: int) -> S2SSide:
    """s2s's params (the benchmark's overrides, then ``overrides``, the ``-S`` ones), with
    ``train.batch_tokens`` set to ``fixed_batch_tokens`` or, when 0, chosen so that an update holds Joey's real
    target tokens (``accumulate`` batches of ``buckets_per_batch`` chunks). ``joey_batching``: s2s will
    train on a replay of Joey's batches, one per update."""
    vocabs = Vocabs.load(root / "data/spm")
    if not vocabs.joint:
        sys.exit(f"{root}/data/spm: the benchmark needs the joint SentencePiece model (spm.joint: true)")
    train_data = ParallelData.load(root / "data/tensors/train")
    benchmark = [f"{k}={json.dumps(v)}" for k, v in S2S_OVERRIDES.items()] + [f"train.threads={threads}"]
    params = load_params_with_overrides(root / "params.yaml", benchmark + overrides)
    joey_target = joey_batch_real_tokens(train_data.src_lens, train_data.tgt_lens, JOEY_BATCH_TOKENS,
                                         seed=params.train.seed)
    mix, accumulate = params.train.buckets_per_batch, params.train.accumulate
    if accumulate * mix > 1 and joey_batching:
        sys.exit("--s2s-batching joey replays Joey's batches, one per update: drop -S train.accumulate "
                 "and -S train.buckets_per_batch")
    chunk_tokens = (fixed_batch_tokens // mix if fixed_batch_tokens else
                    match_batch_tokens(train_data, joey_target / (accumulate * mix), params.train.seed,
                                       params.train.bucket_pool))
    batch_tokens = chunk_tokens * mix
    raw = params_to_dict(params)
    raw["train"]["batch_tokens"] = batch_tokens
    params = params_from_dict(raw)
    chunk_real = s2s_batch_real_tokens(train_data, chunk_tokens, params.train.seed, params.train.bucket_pool)
    log(f"batches: Joey {JOEY_BATCH_TOKENS} tokens with padding -> {joey_target:,.0f} real target tokens per "
        f"batch (replayed over 3 epochs); s2s train.batch_tokens={batch_tokens} -> {chunk_real * mix:,.0f}"
        + (f" in {mix} length-sorted chunks" if mix > 1 else "")
        + (f", {accumulate} batches per update" if accumulate > 1 else ""))
    return S2SSide(params, vocabs, train_data, batch_tokens, joey_target)


def prepare_decoding(root: Path, test_sentences: int, batch1_sentences: int, beams: list[int]) -> Decoding:
    """Test 2016's first ``test_sentences`` (0 = all) at batch 64 and first ``batch1_sentences`` (0 = none)
    at batch 1, each with every beam size; the subsets are written to work/ as source files only (Joey's
    predict then scores nothing)."""
    test_src = read_lines(root / "data/clean/test_2016_flickr.src")
    refs = read_lines(root / "data/raw/multi30k/test_2016_flickr.en")
    n_test = test_sentences or len(test_src)
    n_b1 = min(batch1_sentences, n_test)
    sets = {"b64": (test_src[:n_test], 64)}
    if n_b1:
        sets["b1"] = (test_src[:n_b1], 1)
    for name, (lines, _) in sets.items():
        (WORK / f"test_{name}.src").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        (WORK / f"test_{name}.tgt").unlink(missing_ok=True)
    specs = [(name, batch, beam) for name, (_, batch) in sets.items() for beam in beams]
    joey_args = ["--decode", *[f"{n}_beam{k}={WORK / ('test_' + n)}:{b}:{k}" for n, b, k in specs]]
    return Decoding(sets, specs, refs, joey_args)


def check_same_model(root: Path, steps: int, threads: int, s2s: S2SSide) -> Checked:
    """Joey's venv and config for ``steps`` updates; stop unless both systems build the same model (parameter counts,
    tokenization, and the same log-probabilities from Joey's initial weights)."""
    python = ensure_joey_venv()
    vocab_size = write_vocab(root / "data/spm/spm.model", WORK / "vocab.txt")
    config = joey_config(root, s2s.params, steps, WORK / "joey_model", WORK / "vocab.txt")
    log("Joey NMT: building the model")
    joey_init = WORK / "joey_init.pt"
    joey_size = run_joey(python, config, WORK / "joey_size.json", threads,
                         ["--count-only", "--dump-init", str(joey_init)], WORK / "joey_size.log")
    torch.manual_seed(s2s.params.train.seed)
    model = build_model(s2s.params.model, s2s.vocabs)
    s2s_params = model.num_parameters()
    gap = abs(s2s_params - joey_size["params"]) / joey_size["params"]
    log(f"parameters: s2s {s2s_params:,}, Joey NMT {joey_size['params']:,} ({gap:.2%} apart; "
        f"vocabularies {vocab_size} / {joey_size['vocab']})")
    if gap > PARAM_TOLERANCE:
        sys.exit(f"FAIL: parameter counts differ by {gap:.2%} (> {PARAM_TOLERANCE:.0%}): not the same architecture")
    if joey_size["tokenization_mismatches"]:
        sys.exit(f"FAIL: Joey's ids differ from SentencePiece's on {joey_size['tokenization_mismatches']} "
                 "training lines: not the same data")
    probe = torch.load(joey_init, weights_only=True)
    joey_start = s2s_state_from_joey(probe["state_dict"], model)
    model.load_state_dict(joey_start)
    gap_value = function_gap(model, probe)
    log(f"s2s with Joey's initial weights: largest log-probability difference {gap_value:.1e} "
        f"over the reference tokens of {len(probe['pairs'])} training pairs")
    if gap_value > FUNCTION_TOLERANCE:
        sys.exit(f"FAIL: with the same weights the two models differ by {gap_value:.3g} in a "
                 "log-probability: not the same architecture")
    return Checked(python, config, vocab_size, joey_size["params"], model, joey_start, gap_value, len(probe["pairs"]))


