"""What the peer benchmark measures on s2s's side, and the figures both sides share.

- batch sizes: Joey's token batches replayed, and the s2s budget whose real target tokens match them;
- training: ``steps`` updates as ``s2s train`` makes them, timed like Joey's (update end to update end);
- decoding: raw lines in, text out, sentences/s; on one model, s2s's decoding bracketing Joey's;
- quality: sacreBLEU of the batch-64 outputs, the share of identical outputs.

The machine's float32 matrix-product rate goes with every result, so that figures of different
hours or machines are not compared by mistake.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from sacrebleu.metrics import BLEU

from environment import WORK, log
from joey import JOEY_BATCH_TOKENS, run_joey
from s2s.bench import matmul_flops_per_s
from s2s.config import Params
from s2s.optim import build_optimizer
from s2s.search import LengthLimit
from s2s.subword import Vocabs
from s2s.tensors import ParallelData, token_batches
from s2s.train import build_model, epoch_updates, optimizer_step, update_batches
from s2s.translator import Translator
from weights import joey_state_from_s2s

# (name, batch size, beam) of one decoding, e.g. ("b64", 64, 5); its lines are decode_sets[name]
DecodeSpec = tuple[str, int, int]


def machine_rate() -> float:
    """The CPU's float32 matrix-product rate on the current torch threads, best of three (FLOP/s)."""
    return max(matmul_flops_per_s(torch.device("cpu")) for _ in range(3))


# ---------------------------------------------------------------- batch sizes

def joey_batches(src_lens: np.ndarray, tgt_lens: np.ndarray, budget: int,
                 rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch of Joey's TokenBatchSampler, replayed: shuffled sentences are added until
    sentences x max(src+1, tgt+1) reaches the budget (no length bucketing)."""
    batches, batch, longest = [], [], 0
    for i in rng.permutation(len(src_lens)):
        longest = max(longest, int(max(src_lens[i], tgt_lens[i])) + 1)
        batch.append(i)
        if longest * len(batch) >= budget:
            batches.append(np.asarray(batch))
            batch, longest = [], 0
    if batch:
        batches.append(np.asarray(batch))
    return batches


def joey_batch_real_tokens(src_lens: np.ndarray, tgt_lens: np.ndarray, budget: int, epochs: int = 3,
                           seed: int = 0) -> float:
    """Mean real target tokens (pieces + EOS) per batch of Joey's token batches over a few epochs."""
    rng = np.random.default_rng(seed)
    batches = [b for _ in range(epochs) for b in joey_batches(src_lens, tgt_lens, budget, rng)]
    return sum(int(tgt_lens[b].sum()) + len(b) for b in batches) / len(batches)


def s2s_batch_real_tokens(data: ParallelData, budget: int, seed: int, pool: int) -> float:
    """Mean real target tokens (pieces + EOS) per s2s length-bucketed batch of ``budget`` tokens."""
    batches = token_batches(data.src_lens, data.tgt_lens, budget, np.random.default_rng(seed), pool)
    return float(sum(int(data.tgt_lens[b].sum()) + len(b) for b in batches) / len(batches))


def match_batch_tokens(data: ParallelData, target: float, seed: int, pool: int) -> int:
    """The s2s ``batch_tokens`` whose mean real target tokens per batch is closest to ``target``."""
    low, high = 64, 64 * JOEY_BATCH_TOKENS
    while high - low > 1:  # the mean grows with the budget
        mid = (low + high) // 2
        low, high = (mid, high) if s2s_batch_real_tokens(data, mid, seed, pool) < target else (low, mid)
    return min((low, high), key=lambda b: abs(s2s_batch_real_tokens(data, b, seed, pool) - target))


# ---------------------------------------------------------------- training

def train_s2s(params: Params, vocabs: Vocabs, data: ParallelData, steps: int, warmup: int,
              initial_state: dict | None, joey_batching: bool) -> tuple:
    """``steps`` updates from scratch, as ``s2s train`` makes them (epoch-seeded length-bucketed
    batches, ``optimizer_step``), from s2s's own initialisation or ``initial_state``, and with Joey's
    unbucketed batches when ``joey_batching``; an update holds ``train.accumulate`` batches (1 with Joey's,
    which run.py checks). The rate is timed like Joey's, from update end to update end.
    Returns the model (eval mode) and the training figures."""
    config = params.train
    device = torch.device("cpu")
    torch.manual_seed(config.seed)
    model = build_model(params.model, vocabs).to(device)
    if initial_state is not None:
        model.load_state_dict(initial_state)
    optimizer = build_optimizer(model, config.lr)
    model.train()
    records, epoch, began = [], 1, time.perf_counter()
    while len(records) < steps:
        groups = ([[b] for b in joey_batches(data.src_lens, data.tgt_lens, JOEY_BATCH_TOKENS,
                                             np.random.default_rng([config.seed, epoch]))]
                  if joey_batching else epoch_updates(data, config, epoch))
        for group in groups[:steps - len(records)]:
            started = time.perf_counter()
            loss, tokens, _ = optimizer_step(model, optimizer, update_batches(data, group), config, device, None)
            records.append({"begin": started, "end": time.perf_counter(), "tokens": tokens,
                            "sentences": sum(len(b) for b in group),
                            "tgt_positions": sum(len(b) * (int(data.tgt_lens[b].max()) + 1) for b in group),
                            "loss": loss / tokens})
            if len(records) % 25 == 0:
                log(f"s2s: update {len(records)}/{steps}")
        epoch += 1
    timed = records[warmup:]
    wall = timed[-1]["end"] - (records[warmup - 1]["end"] if warmup else timed[0]["begin"])
    tokens = sum(r["tokens"] for r in timed)
    return model.eval(), {
        "steps": len(records), "warmup_steps": warmup, "timed_steps": len(timed), "seconds": wall,
        "tgt_tokens": tokens, "tgt_tokens_per_s": tokens / wall, "seconds_per_step": wall / len(timed),
        "mean_tgt_tokens_per_batch": tokens / len(timed),
        "mean_tgt_tokens_per_batch_all": sum(r["tokens"] for r in records) / len(records),
        "mean_sentences_per_batch": sum(r["sentences"] for r in timed) / len(timed),
        "padding_fraction": 1 - tokens / sum(r["tgt_positions"] for r in timed),
        "mean_loss_first10": sum(r["loss"] for r in records[:10]) / len(records[:10]),
        "mean_loss_last10": sum(r["loss"] for r in records[-10:]) / len(records[-10:]),
        "train_wall_seconds": time.perf_counter() - began}


def smoothed_target_entropy(smoothing: float, vocab_size: int) -> float:
    """Entropy of Joey's label-smoothed target (1 - smoothing on the reference, the rest spread over the
    vocabulary less the reference and padding): Joey's KL loss plus this is the cross-entropy s2s reports."""
    if smoothing <= 0:
        return 0.0
    return -(1 - smoothing) * math.log(1 - smoothing) - smoothing * math.log(smoothing / (vocab_size - 2))


# ---------------------------------------------------------------- decoding

def decode_s2s(model, vocabs: Vocabs, params: Params, lines: list[str], batch_size: int, beam: int) -> dict:
    """Raw lines in, text out (SentencePiece encoding and decoding timed too, as in Joey's predict)."""
    translator = Translator(model, vocabs, LengthLimit.from_eval(params.eval), batch_size,
                            normalization=params.clean.normalization, beam=beam,
                            len_penalty=params.eval.len_penalty)
    began = time.perf_counter()
    hyps = translator.translate_ids(translator.encode_lines(lines))
    texts = translator.detokenize(hyps)
    elapsed = time.perf_counter() - began
    tokens = sum(len(t) + 1 for t in hyps.tokens)
    return {"batch_size": batch_size, "beam": beam, "sentences": len(lines), "seconds": elapsed,
            "sentences_per_s": len(lines) / elapsed, "tgt_tokens_per_s": tokens / elapsed, "hyps": texts}


def decode_s2s_sets(model, vocabs: Vocabs, params: Params, decode_sets: dict[str, tuple[list[str], int]],
                    specs: list[DecodeSpec]) -> list[dict]:
    """s2s's decoding of each (set, batch, beam) in ``specs``; ``decode_sets`` maps a set's name to
    its lines and batch size."""
    with torch.inference_mode():
        return [{"name": f"{name}_beam{beam}", **decode_s2s(model, vocabs, params, decode_sets[name][0], batch, beam)}
                for name, batch, beam in specs]


def decode_same_weights(python: Path, config: Path, model, threads: int, decode_args: list[str],
                        s2s_before: list[dict], decode_s2s_again: Callable[[], list[dict]],
                        refs: list[str]) -> dict:
    """Joey's decoding of the same sets with ``model``'s weights, bracketed by s2s's: ``s2s_before``
    before Joey's and ``decode_s2s_again()`` after it; s2s's time per set is the mean of the two, so a
    machine whose load drifts during the run moves both sides alike. BLEU of both is scored."""
    log("Joey NMT: decoding with s2s's weights")
    handoff = WORK / "s2s_weights_for_joey.pt"
    torch.save(joey_state_from_s2s(model), handoff)
    joey_same = run_joey(python, config, WORK / "joey_same_weights.json", threads,
                         ["--load-weights", str(handoff), "--check-lines", "0", *decode_args],
                         WORK / "joey_same_weights.log")
    log("s2s: decoding again, after Joey")
    bracketed = []
    for before, after in zip(s2s_before, decode_s2s_again()):
        seconds = (before["seconds"] + after["seconds"]) / 2
        bracketed.append({**before, "seconds": seconds, "seconds_before_after": [before["seconds"], after["seconds"]],
                          "sentences_per_s": before["sentences"] / seconds,
                          "tgt_tokens_per_s": before["tgt_tokens_per_s"] * before["seconds"] / seconds})
    for decodes in (bracketed, joey_same["decode"]):
        score_bleu(decodes, refs, {})
    return {"s2s_decode": bracketed, "joeynmt_decode": joey_same["decode"],
            **compare_decodes(bracketed, joey_same["decode"])}


# ---------------------------------------------------------------- quality

def score_bleu(decodes: list[dict], refs: list[str], scores: dict) -> str:
    """sacreBLEU of each batch-64 decoding (into each dict's "bleu", and ``scores`` by greedy/beam);
    returns the signature."""
    bleu = BLEU()
    for d in decodes:
        if d["batch_size"] == 64:
            d["bleu"] = bleu.corpus_score(d["hyps"], [refs[:len(d["hyps"])]]).score
            scores["greedy" if d["beam"] == 1 else "beam"] = d["bleu"]
    return str(bleu.get_signature())


def add_bleu(system: dict, refs: list[str]) -> None:
    """Score a side's batch-64 decodings: its "bleu" by search and "bleu_signature"."""
    system["bleu"] = {}
    system["bleu_signature"] = score_bleu(system["decode"], refs, system["bleu"])


def compare_decodes(s2s_decode: list[dict], joey_decode: list[dict]) -> dict:
    """Speed ratios s2s/Joey and the share of identical outputs, per decoding set."""
    pairs = list(zip(s2s_decode, joey_decode))
    return {"ratios": {f"decode_{d['name']}_sentences_per_s": d["sentences_per_s"] / jd["sentences_per_s"]
                       for d, jd in pairs},
            "identical_outputs": {d["name"]: sum(a == b for a, b in zip(d["hyps"], jd["hyps"])) / len(d["hyps"])
                                  for d, jd in pairs}}
