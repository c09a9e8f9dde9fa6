"""Peer benchmark: s2s against Joey NMT 2.3.0 at the identical architecture (issue 6), in one command.

    .venv/bin/python benchmarks/peers/joeynmt/run.py --root /work/run-default --steps 300

``--root`` is a project checkout where the data stages have run (data/clean,
data/spm/spm.model, data/tensors, data/raw/multi30k). The script

1. creates ``benchmarks/peers/joeynmt/.venv`` with Joey NMT 2.3.0 if it is missing
   (torch==2.13.0 first, a CPU build where pip finds one, then joeynmt==2.3.0,
   importlib_metadata and sentencepiece==0.2.0);
2. gives Joey the same cleaned text, the same joint SentencePiece model (its
   sentencepiece tokenizer, with a vocabulary file of the model's pieces in id
   order) and the architecture of issue 6; builds both models and stops unless their
   parameter counts agree within 2%;
3. trains each for ``--steps`` updates from scratch (Adam 1e-3 constant, the same
   label smoothing and clipping, no validation) and measures target tokens/s after
   ``--warmup`` updates: Joey with its token batches of 4096 (padding counted, not
   bucketed), s2s with length-bucketed batches whose budget is chosen so that the
   mean real target tokens per batch matches Joey's;
4. decodes test_2016_flickr with each trained model, greedy and beam 5 at batch 64,
   and at batch 1 on the first ``--batch1-sentences``; sentences/s, and sacreBLEU of
   the batch-64 outputs against the raw references;
5. with ``--same-weights``, hands s2s's trained weights to Joey and decodes the same
   sets with Joey once more: both decoders then run one model, so their speeds compare
   without a quality caveat, and their outputs should agree;
6. prints a table with the ratios s2s/Joey and writes everything to ``--out`` (JSON).

Both sides use ``--threads`` torch threads (2 on the 2-core machine of issue 6).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import string
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
VENV = HERE / ".venv"
WORK = HERE / "work"
JOEY_PACKAGES = [["torch==2.13.0"], ["joeynmt==2.3.0", "importlib_metadata", "sentencepiece==0.2.0"]]
PARAM_TOLERANCE = 0.02
FUNCTION_TOLERANCE = 1e-3  # log-probability, float32 sums in a different order
JOEY_BATCH_TOKENS = 4096  # issue 6: Joey's token batches of 4096 (padding included)

try:  # s2s comes from the project's environment; re-run under it when started with another python
    import s2s  # noqa: F401
except ImportError:
    project_python = REPO / ".venv" / "bin" / "python"
    if project_python.exists() and Path(sys.prefix).resolve() != project_python.parents[1].resolve():
        os.execv(str(project_python), [str(project_python), __file__, *sys.argv[1:]])
    sys.exit(f"s2s is not importable; run with the project's environment: {project_python} {__file__}")

import numpy as np
import torch
from sacrebleu.metrics import BLEU

from s2s.atomic import write_text
from s2s.bench import matmul_flops_per_s
from s2s.clean import read_lines
from s2s.config import (
    Params,
    load_params_with_overrides,
    params_from_dict,
    params_to_dict,
)
from s2s.model.initialization import uniform_bound
from s2s.search import LengthLimit
from s2s.subword import Vocabs
from s2s.tensors import ParallelData, collate, pack, token_batches
from s2s.train import build_model, build_optimizer, epoch_updates, optimizer_step
from s2s.translator import Translator

# The architecture of issue 6, as s2s params (the Joey side is joey.yaml.tmpl).
# Joey's recurrent decoder with `attention: bahdanau` and `input_feeding: true` is s2s's Luong decoder
# with input feeding and the additive score: the attention reads the new state, the attentional vector
# tanh(W [s_t; c_t]) feeds the next step. `model.init: uniform` draws from the scheme Joey's config has.
S2S_OVERRIDES = {"model.cell": "gru", "model.attention": "luong", "model.attention_score": "additive",
                 "model.input_feeding": True, "model.emb": 256, "model.hidden": 512,
                 "model.enc_layers": 1, "model.dec_layers": 1, "model.bidirectional": True,
                 "model.dropout": 0.3, "model.tie_embeddings": False, "model.init": "uniform", "train.lr": 0.001,
                 "train.lr_schedule": "constant", "train.accumulate": 1, "train.device": "cpu",
                 "train.precision": "fp32"}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------- Joey's environment

def ensure_joey_venv() -> Path:
    """This folder's .venv with Joey NMT 2.3.0; created (in about a minute) when missing."""
    python = VENV / "bin" / "python"
    probe = ("import joeynmt, importlib_metadata, sentencepiece as s; "
             "assert hasattr(s.SentencePieceProcessor, 'SetVocabulary')")
    if python.exists() and subprocess.run([str(python), "-c", probe], capture_output=True, check=False).returncode == 0:
        return python
    log(f"creating {VENV} (torch 2.13.0 CPU, joeynmt 2.3.0, sentencepiece 0.2.0)")
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    for packages in JOEY_PACKAGES:  # torch first, so joeynmt's dependency on torch is already met
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        *packages], check=True)
    if subprocess.run([str(python), "-c", probe], check=False).returncode != 0:
        sys.exit(f"{VENV}: Joey NMT does not import after installation")
    return python


def write_vocab(spm_model: Path, path: Path) -> int:
    """Joey's vocabulary file: the SentencePiece pieces after the 4 specials, in id order, so that
    Joey's ids are SentencePiece's (Joey puts <unk> <pad> <s> </s> first, pad and unk swapped)."""
    import sentencepiece as spm

    proc = spm.SentencePieceProcessor(model_file=str(spm_model))
    specials = [proc.id_to_piece(i) for i in range(4)]
    if specials != ["<pad>", "<unk>", "<s>", "</s>"]:
        sys.exit(f"{spm_model}: unexpected special pieces {specials}")
    pieces = [proc.id_to_piece(i) for i in range(4, proc.get_piece_size())]
    if any(not p or any(c.isspace() or c in "\x1c\x1d\x1e\x85\u2028\u2029" for c in p) for p in pieces):
        sys.exit(f"{spm_model}: a piece that a line-based vocabulary file cannot hold")
    path.write_text("".join(p + "\n" for p in pieces), encoding="utf-8")
    return proc.get_piece_size()


def joey_config(root: Path, params: Params, steps: int, model_dir: Path, vocab: Path) -> Path:
    logging_freq = 10 if steps >= 10 else 1
    values = {"MODEL_DIR": model_dir, "SEED": params.train.seed, "TRAIN": root / "data/clean/train",
              "DEV": root / "data/clean/valid", "SPM_MODEL": root / "data/spm/spm.model", "VOCAB": vocab,
              "EMB": params.model.emb, "ENC_HIDDEN": params.model.hidden // 2, "DEC_HIDDEN": params.model.hidden,
              "DROPOUT": params.model.dropout, "LR": params.train.lr, "INIT_WEIGHT": uniform_bound(params.model),
              "LABEL_SMOOTHING": params.train.label_smoothing, "CLIP_GRAD": params.train.clip_grad,
              "BATCH_TOKENS": JOEY_BATCH_TOKENS, "STEPS": steps, "LOGGING_FREQ": logging_freq,
              "VALIDATION_FREQ": logging_freq * (steps // logging_freq + 1), "BEAM_ALPHA": params.eval.len_penalty}
    if params.train.clip_grad <= 0:
        sys.exit("train.clip_grad must be > 0 here (Joey's clip_grad_norm)")
    text = string.Template((HERE / "joey.yaml.tmpl").read_text()).substitute(
        {k: str(v) for k, v in values.items()})
    path = WORK / "joey.yaml"
    path.write_text(text)
    return path


def run_joey(python: Path, config: Path, out: Path, threads: int, extra: list[str], log_path: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"}
    out.unlink(missing_ok=True)
    with open(log_path, "w") as handle:
        code = subprocess.run([str(python), str(HERE / "joey_side.py"), "--config", str(config), "--out", str(out),
                               "--threads", str(threads), *extra], stdout=handle, stderr=subprocess.STDOUT,
                              env=env, check=False).returncode
    if code != 0 or not out.exists():
        tail = "".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-30:])
        sys.exit(f"Joey NMT failed (exit {code}); last lines of {log_path}:\n{tail}")
    return json.loads(out.read_text())


# A reused Joey run's speeds compare with this run's only on a machine this close in matmul rate
# (the best of three measurements varies by up to ~20% on one shared machine; kinds differ by 2x+).
MACHINE_TOLERANCE = 0.3


def machine_gap(previous: dict, matmul_rate: float) -> float | None:
    """Relative difference of the matrix-product rate measured with a reused Joey run and now; None
    when that run recorded none (older results)."""
    then = previous.get("matmul_flops_per_s")
    return None if not then else abs(matmul_rate - then) / then


def _same_joey_run(previous: dict, config: Path, joey_args: list[str], threads: int) -> bool:
    decode = joey_args[joey_args.index("--decode") + 1:]
    return (previous.get("config_text") == config.read_text() and previous.get("decode_specs") == decode
            and previous.get("warmup") == int(joey_args[1]) and previous.get("threads") == threads)


# ---------------------------------------------------------------- the same function

# Joey's parameter names -> s2s's (encoder.rnn.* are named alike); s2s's output bias has no twin.
JOEY_TO_S2S = {"src_embed.lut.weight": "encoder.embed.weight", "trg_embed.lut.weight": "decoder.embed.weight",
               "decoder.rnn.weight_ih_l0": "decoder.cells.0.weight_ih",
               "decoder.rnn.weight_hh_l0": "decoder.cells.0.weight_hh",
               "decoder.rnn.bias_ih_l0": "decoder.cells.0.bias_ih", "decoder.rnn.bias_hh_l0": "decoder.cells.0.bias_hh",
               "decoder.att_vector_layer.weight": "decoder.combine.weight",
               "decoder.att_vector_layer.bias": "decoder.combine.bias", "decoder.output_layer.weight": "output.weight",
               "decoder.attention.key_layer.weight": "decoder.attention.key_proj.weight",
               "decoder.attention.query_layer.weight": "decoder.attention.query_proj.weight",
               "decoder.attention.energy_layer.weight": "decoder.attention.energy.weight",
               "decoder.bridge_layer.weight": "decoder.bridge.hidden.weight",
               "decoder.bridge_layer.bias": "decoder.bridge.hidden.bias"}
VOCAB_ROWS = {"src_embed.lut.weight", "trg_embed.lut.weight", "decoder.output_layer.weight"}


def s2s_state_from_joey(joey_state: dict, model) -> dict:
    """Joey's weights as an s2s state dict for ``model``: rows of vocabulary-indexed weights reordered
    (Joey's unk 0 / pad 1 are SentencePiece's 1 / 0), the output bias (Joey has none) zero."""
    state = {}
    for name, tensor in joey_state.items():
        if name in VOCAB_ROWS:
            tensor = tensor[[1, 0, *range(2, tensor.size(0))]]
        state[JOEY_TO_S2S.get(name, name)] = tensor.clone()
    state["output.bias"] = torch.zeros_like(model.output.bias)
    missing = set(model.state_dict()) ^ set(state)
    if missing:
        sys.exit(f"FAIL: parameters without a counterpart in the other system: {sorted(missing)}")
    return state


def joey_state_from_s2s(model) -> dict:
    """s2s's weights for Joey (the inverse of :func:`s2s_state_from_joey`): Joey's names and row order,
    and s2s's output bias apart (``output_bias``), since Joey's output layer has none."""
    to_joey = {s2s_name: joey_name for joey_name, s2s_name in JOEY_TO_S2S.items()}
    swap = [1, 0, *range(2, model.output.bias.numel())]
    state = {}
    for name, tensor in model.state_dict().items():
        if name == "output.bias":
            continue
        joey_name = to_joey.get(name, name)
        state[joey_name] = (tensor[swap] if joey_name in VOCAB_ROWS else tensor).clone()
    return {"state_dict": state, "output_bias": model.output.bias.detach()[swap].clone()}


def function_gap(model, probe: dict) -> float:
    """Largest |log p_s2s - log p_Joey| over the reference tokens of the probe pairs (eval mode),
    with ``model`` holding Joey's weights: 0 up to float rounding when the two compute one function."""
    pairs = probe["pairs"]
    src_ids, src_offsets = pack([s for s, _ in pairs])
    tgt_ids, tgt_offsets = pack([t for _, t in pairs])
    data = ParallelData({"src": src_ids, "src_offsets": src_offsets, "tgt": tgt_ids, "tgt_offsets": tgt_offsets})
    batch = collate(data, np.arange(len(pairs)))
    model.eval()
    with torch.no_grad():
        log_probs = -model.token_losses(batch.src, batch.src_lens, batch.tgt_in, batch.tgt_out)
    model.train()
    return max(float((log_probs[row, :len(ref)] - torch.tensor(ref)).abs().max())
               for row, ref in enumerate(probe["log_probs"]))


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
    batches = token_batches(data.src_lens, data.tgt_lens, budget, np.random.default_rng(seed), pool)
    return float(sum(int(data.tgt_lens[b].sum()) + len(b) for b in batches) / len(batches))


def match_batch_tokens(data: ParallelData, target: float, seed: int, pool: int) -> int:
    """The s2s ``batch_tokens`` whose mean real target tokens per batch is closest to ``target``."""
    low, high = 64, 64 * JOEY_BATCH_TOKENS
    while high - low > 1:  # the mean grows with the budget
        mid = (low + high) // 2
        low, high = (mid, high) if s2s_batch_real_tokens(data, mid, seed, pool) < target else (low, mid)
    return min((low, high), key=lambda b: abs(s2s_batch_real_tokens(data, b, seed, pool) - target))


# ---------------------------------------------------------------- the s2s side

def train_s2s(params: Params, vocabs: Vocabs, data: ParallelData, steps: int, warmup: int,
              initial_state: dict | None, joey_batching: bool) -> tuple:
    """``steps`` updates from scratch, as ``s2s train`` makes them (epoch-seeded length-bucketed
    batches, ``optimizer_step``), from s2s's own initialisation or ``initial_state``, and with Joey's
    unbucketed batches when ``joey_batching``; an update holds ``train.accumulate`` batches (1 with Joey's,
    which ``main`` checks). The rate is timed like Joey's, from update end to update end."""
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
            loss, tokens, _ = optimizer_step(model, optimizer, data, group, config, device, None)
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


def decode_s2s(model, vocabs: Vocabs, params: Params, lines: list[str], batch_size: int, beam: int) -> dict:
    """Raw lines in, text out (SentencePiece encoding and decoding timed too, as in Joey's predict)."""
    translator = Translator(model, vocabs, LengthLimit(params.eval.max_len_a, params.eval.max_len_b), batch_size,
                            normalization=params.clean.normalization, beam=beam,
                            len_penalty=params.eval.len_penalty)
    began = time.perf_counter()
    hyps = translator.translate_ids(translator.encode_lines(lines))
    texts = translator.detokenize(hyps)
    elapsed = time.perf_counter() - began
    tokens = sum(len(t) + 1 for t in hyps.tokens)
    return {"batch_size": batch_size, "beam": beam, "sentences": len(lines), "seconds": elapsed,
            "sentences_per_s": len(lines) / elapsed, "tgt_tokens_per_s": tokens / elapsed, "hyps": texts}


def decode_s2s_sets(model, vocabs: Vocabs, params: Params, decode_sets: dict, specs: list[tuple]) -> list[dict]:
    """s2s's decoding of each (set, batch, beam) in ``specs``."""
    with torch.inference_mode():
        return [{"name": f"{name}_beam{beam}", **decode_s2s(model, vocabs, params, decode_sets[name][0], batch, beam)}
                for name, batch, beam in specs]


def decode_same_weights(python: Path, config: Path, model, threads: int, decode_args: list[str],
                        s2s_before: list[dict], decode_s2s_again, refs: list[str]) -> dict:
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


# ---------------------------------------------------------------- report

def score_bleu(decodes: list[dict], refs: list[str], scores: dict) -> str:
    """sacreBLEU of each batch-64 decoding (into each dict's "bleu", and ``scores`` by greedy/beam);
    returns the signature."""
    bleu = BLEU()
    for d in decodes:
        if d["batch_size"] == 64:
            d["bleu"] = bleu.corpus_score(d["hyps"], [refs[:len(d["hyps"])]]).score
            scores["greedy" if d["beam"] == 1 else "beam"] = d["bleu"]
    return str(bleu.get_signature())


def smoothed_target_entropy(smoothing: float, vocab_size: int) -> float:
    """Entropy of Joey's label-smoothed target (1 - smoothing on the reference, the rest spread over the
    vocabulary less the reference and padding): Joey's KL loss plus this is the cross-entropy s2s reports."""
    if smoothing <= 0:
        return 0.0
    return -(1 - smoothing) * math.log(1 - smoothing) - smoothing * math.log(smoothing / (vocab_size - 2))


def table(result: dict) -> str:
    s, j = result["s2s"], result["joeynmt"]
    rows = [("parameters", s["params"], j["params"], "{:,.0f}", None),
            ("train: target tokens/s", s["train"]["tgt_tokens_per_s"], j["train"]["tgt_tokens_per_s"], "{:,.1f}", "x"),
            ("train: seconds/update", s["train"]["seconds_per_step"], j["train"]["seconds_per_step"], "{:.3f}", None),
            ("train: real target tokens/update", s["train"]["mean_tgt_tokens_per_batch"],
             j["train"]["mean_tgt_tokens_per_batch"], "{:,.0f}", None),
            ("train: padding (target side)", s["train"]["padding_fraction"], j["train"]["padding_fraction"],
             "{:.1%}", None)]
    # Joey's smoothed loss is a KL divergence: add the entropy of its target distribution to compare.
    rows.append(("train: loss, mean of the last 10 updates", s["train"]["mean_loss_last10"],
                 j["train"]["mean_loss_last10"] + result["joey_target_entropy"], "{:.3f}", "-"))
    joey_decode = {d["name"]: d for d in j["decode"]}
    for d in s["decode"]:
        jd = joey_decode[d["name"]]
        label = f"decode b{d['batch_size']} {'greedy' if d['beam'] == 1 else 'beam ' + str(d['beam'])} ({d['sentences']}): sent/s"
        rows.append((label, d["sentences_per_s"], jd["sentences_per_s"], "{:,.1f}", "x"))
    for name in ("greedy", "beam"):
        if name in s["bleu"]:
            rows.append((f"BLEU test 2016, {name} b64", s["bleu"][name], j["bleu"][name], "{:.2f}", "-"))
    width = max(len(r[0]) for r in rows) + 2
    lines = [f"{'':<{width}}{'s2s':>14}{'Joey NMT':>14}{'s2s/Joey':>11}"]
    for label, a, b, fmt, kind in rows:
        ratio = f"{a / b:.2f}x" if kind == "x" else (f"{a - b:+.2f}" if kind == "-" else "")
        lines.append(f"{label:<{width}}{fmt.format(a):>14}{fmt.format(b):>14}{ratio:>11}")
    return "\n".join(lines)


def compare_decodes(s2s_decode: list[dict], joey_decode: list[dict]) -> dict:
    """Speed ratios s2s/Joey and the share of identical outputs, per decoding set."""
    pairs = list(zip(s2s_decode, joey_decode))
    return {"ratios": {f"decode_{d['name']}_sentences_per_s": d["sentences_per_s"] / jd["sentences_per_s"]
                       for d, jd in pairs},
            "identical_outputs": {d["name"]: sum(a == b for a, b in zip(d["hyps"], jd["hyps"])) / len(d["hyps"])
                                  for d, jd in pairs}}


def same_weights_table(same_weights: dict) -> str:
    lines = [f"{'':<24}{'s2s sent/s':>12}{'Joey sent/s':>13}{'s2s/Joey':>10}{'same output':>13}"
             f"{'BLEU s2s / Joey':>18}"]
    for d, jd in zip(same_weights["s2s_decode"], same_weights["joeynmt_decode"]):
        label = f"b{d['batch_size']} {'greedy' if d['beam'] == 1 else 'beam ' + str(d['beam'])} ({d['sentences']})"
        bleu = f"{d['bleu']:.2f} / {jd['bleu']:.2f}" if "bleu" in d and "bleu" in jd else ""
        lines.append(f"{label:<24}{d['sentences_per_s']:>12,.1f}{jd['sentences_per_s']:>13,.1f}"
                     f"{d['sentences_per_s'] / jd['sentences_per_s']:>9.2f}x"
                     f"{same_weights['identical_outputs'][d['name']]:>13.1%}{bleu:>18}")
    return "\n".join(lines)


def run_record(root: Path, threads: int) -> dict:
    """The fields that open every result file: when, where and on how many threads."""
    return {"created": time.strftime("%Y-%m-%d %H:%M:%S"), "root": str(root), "host": platform.node(),
            "cpu_count": os.cpu_count(), "threads": threads}


def s2s_record(model, train: dict, decode: list[dict]) -> dict:
    """s2s's side of a result file (its BLEU is added by :func:`add_bleu`)."""
    return {"system": "s2s", "params": model.num_parameters(), "threads": torch.get_num_threads(),
            "train": train, "decode": decode}


def add_bleu(system: dict, refs: list[str]) -> None:
    """Score a side's batch-64 decodings: its "bleu" by search and "bleu_signature"."""
    system["bleu"] = {}
    system["bleu_signature"] = score_bleu(system["decode"], refs, system["bleu"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True,
                        help="checkout whose data stages have run (data/clean, data/spm, data/tensors, data/raw)")
    parser.add_argument("--steps", type=int, default=300, help="training updates of each system")
    parser.add_argument("--warmup", type=int, default=10, help="first updates left out of the rate")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of both systems")
    parser.add_argument("--test-sentences", type=int, default=0,
                        help="decode the first N test sentences at batch 64 (0 = all 1,000)")
    parser.add_argument("--batch1-sentences", type=int, default=100,
                        help="decode the first N test sentences at batch 1 (0 = skip)")
    parser.add_argument("--beams", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--s2s-batch-tokens", type=int, default=0,
                        help="s2s train.batch_tokens (0 = matched to Joey's real target tokens per batch)")
    parser.add_argument("-S", "--set", dest="overrides", action="append", default=[],
                        help="extra s2s param override (key=value), applied after the benchmark's")
    parser.add_argument("--s2s-init", choices=["s2s", "joey"], default="s2s",
                        help="s2s starts from its own draws (of its model.init scheme) or from Joey's initial weights")
    parser.add_argument("--s2s-batching", choices=["bucketed", "joey"], default="bucketed",
                        help="s2s trains on its length-bucketed batches or on Joey's (random, with padding)")
    parser.add_argument("--same-weights", action="store_true",
                        help="also decode with Joey using s2s's trained weights: both decoders on one model")
    parser.add_argument("--decode-only", type=Path, metavar="WEIGHTS",
                        help="train neither system: load these s2s weights (work/s2s_model.pt of an earlier run) and "
                             "compare the decoders on them, as --same-weights does")
    parser.add_argument("--s2s-only", action="store_true",
                        help="train and decode s2s alone: one more sample of its BLEU and loss at this setting "
                             "(bleu_runs.py counts it), with no Joey run and so no speed ratios")
    parser.add_argument("--out", type=Path, default=HERE / "result.json")
    parser.add_argument("--reuse-joey", action="store_true",
                        help="take Joey's figures from the last run (work/joey_result.json) when its config, "
                             "steps and decoding sets are the same; for re-measuring s2s alone")
    args = parser.parse_args()
    if args.s2s_only and (args.decode_only or args.same_weights or args.reuse_joey):
        sys.exit("--s2s-only trains s2s alone, with no Joey run: drop --decode-only, --same-weights and --reuse-joey")
    if not args.decode_only and not 0 <= args.warmup < args.steps:
        sys.exit("--warmup must be at least 0 and below --steps")
    root = args.root.resolve()
    for needed in ("data/clean/train.src", "data/clean/test_2016_flickr.src", "data/spm/spm.model",
                   "data/tensors/train.pt", "data/raw/multi30k/test_2016_flickr.en"):
        if not (root / needed).exists():
            sys.exit(f"{root / needed}: missing; run the data stages there first (dvc repro tensorize)")
    torch.set_num_threads(args.threads)
    WORK.mkdir(exist_ok=True)
    matmul_rate = max(matmul_flops_per_s(torch.device("cpu")) for _ in range(3))
    log(f"this machine: {matmul_rate / 1e9:,.1f} GFLOP/s float32 matrix product on {args.threads} threads")

    # ---- data and params
    vocabs = Vocabs.load(root / "data/spm")
    if not vocabs.joint:
        sys.exit(f"{root}/data/spm: the benchmark needs the joint SentencePiece model (spm.joint: true)")
    train_data = ParallelData.load(root / "data/tensors/train.pt")
    base = root / "params.yaml"
    overrides = [f"{k}={json.dumps(v)}" for k, v in S2S_OVERRIDES.items()] + [f"train.threads={args.threads}"]
    params = load_params_with_overrides(base, overrides + args.overrides)
    joey_target = joey_batch_real_tokens(train_data.src_lens, train_data.tgt_lens, JOEY_BATCH_TOKENS,
                                         seed=params.train.seed)
    # an update holds `accumulate` batches of `buckets_per_batch` length-sorted chunks: Joey's tokens in all
    mix, accumulate = params.train.buckets_per_batch, params.train.accumulate
    if accumulate * mix > 1 and args.s2s_batching == "joey":
        sys.exit("--s2s-batching joey replays Joey's batches, one per update: drop -S train.accumulate "
                 "and -S train.buckets_per_batch")
    chunk_tokens = (args.s2s_batch_tokens // mix if args.s2s_batch_tokens else
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

    test_src = read_lines(root / "data/clean/test_2016_flickr.src")
    refs = read_lines(root / "data/raw/multi30k/test_2016_flickr.en")
    n_test = args.test_sentences or len(test_src)
    n_b1 = min(args.batch1_sentences, n_test)
    decode_sets = {"b64": (test_src[:n_test], 64)}
    if n_b1:
        decode_sets["b1"] = (test_src[:n_b1], 1)
    for name, (lines, _) in decode_sets.items():  # source only: Joey's predict then scores nothing
        (WORK / f"test_{name}.src").write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        (WORK / f"test_{name}.tgt").unlink(missing_ok=True)
    specs = [(name, batch, beam) for name, (_, batch) in decode_sets.items() for beam in args.beams]

    # ---- Joey: environment, config, size check
    python = ensure_joey_venv()
    vocab_size = write_vocab(root / "data/spm/spm.model", WORK / "vocab.txt")
    config = joey_config(root, params, args.steps, WORK / "joey_model", WORK / "vocab.txt")
    log("Joey NMT: building the model")
    joey_init = WORK / "joey_init.pt"
    joey_size = run_joey(python, config, WORK / "joey_size.json", args.threads,
                         ["--count-only", "--dump-init", str(joey_init)], WORK / "joey_size.log")
    torch.manual_seed(params.train.seed)
    s2s_model = build_model(params.model, vocabs)
    s2s_params = s2s_model.num_parameters()
    gap = abs(s2s_params - joey_size["params"]) / joey_size["params"]
    log(f"parameters: s2s {s2s_params:,}, Joey NMT {joey_size['params']:,} ({gap:.2%} apart; "
        f"vocabularies {vocab_size} / {joey_size['vocab']})")
    if gap > PARAM_TOLERANCE:
        sys.exit(f"FAIL: parameter counts differ by {gap:.2%} (> {PARAM_TOLERANCE:.0%}): not the same architecture")
    if joey_size["tokenization_mismatches"]:
        sys.exit(f"FAIL: Joey's ids differ from SentencePiece's on {joey_size['tokenization_mismatches']} "
                 "training lines: not the same data")
    probe = torch.load(joey_init, weights_only=True)
    joey_start = s2s_state_from_joey(probe["state_dict"], s2s_model)
    s2s_model.load_state_dict(joey_start)
    function_gap_value = function_gap(s2s_model, probe)
    log(f"s2s with Joey's initial weights: largest log-probability difference {function_gap_value:.1e} "
        f"over the reference tokens of {len(probe['pairs'])} training pairs")
    if function_gap_value > FUNCTION_TOLERANCE:
        sys.exit(f"FAIL: with the same weights the two models differ by {function_gap_value:.3g} in a "
                 "log-probability: not the same architecture")

    s2s_start = joey_start if args.s2s_init == "joey" else None
    decode_args = ["--decode", *[f"{n}_beam{k}={WORK / ('test_' + n)}:{b}:{k}" for n, b, k in specs]]
    if args.decode_only:
        if not args.decode_only.is_file():
            sys.exit(f"{args.decode_only}: no such file; a run without --decode-only saves work/s2s_model.pt")
        try:
            s2s_model.load_state_dict(torch.load(args.decode_only, weights_only=True))
        except RuntimeError as error:
            sys.exit(f"{args.decode_only}: not weights of this architecture ({str(error).splitlines()[0]}); "
                     "pass the -S overrides of the run that saved them")
        decode = partial(decode_s2s_sets, s2s_model, vocabs, params, decode_sets, specs)
        same_weights = decode_same_weights(python, config, s2s_model, args.threads, decode_args, decode(), decode,
                                           refs)
        result = {**run_record(root, args.threads), "weights": str(args.decode_only.resolve()),
                  "s2s_params": params_to_dict(params), "joey_config": config.read_text(),
                  "function_gap": function_gap_value, "matmul_flops_per_s": matmul_rate,
                  "same_weights": same_weights}
        write_text(args.out, json.dumps(result, indent=1, ensure_ascii=False))
        print(f"\ns2s vs Joey NMT decoding one model ({args.decode_only}; torch {torch.__version__}, "
              f"{args.threads} threads):")
        print(same_weights_table(same_weights))
        print(f"\nJSON: {args.out}")
        return

    if args.s2s_only:
        model, s2s_train = train_s2s(params, vocabs, train_data, args.steps, args.warmup,
                                     s2s_start, args.s2s_batching == "joey")
        torch.save(model.state_dict(), WORK / "s2s_model.pt")  # for a later --decode-only
        s2s = s2s_record(model, s2s_train, decode_s2s_sets(model, vocabs, params, decode_sets, specs))
        add_bleu(s2s, refs)
        result = {**run_record(root, args.threads), "steps": args.steps, "warmup": args.warmup,
                  "s2s_batch_tokens": batch_tokens, "s2s_params": params_to_dict(params),
                  "joey_config": config.read_text(), "s2s_init": args.s2s_init, "s2s_batching": args.s2s_batching,
                  "matmul_flops_per_s": matmul_rate, "s2s": s2s, "joeynmt": None}
        write_text(args.out, json.dumps(result, indent=1, ensure_ascii=False))
        print(f"\ns2s alone, {args.steps} updates: loss {s2s_train['mean_loss_last10']:.3f} (last 10), "
              f"BLEU test 2016 greedy {s2s['bleu']['greedy']:.2f}, beam {s2s['bleu']['beam']:.2f}\nJSON: {args.out}")
        return

    # ---- Joey: train and decode
    log(f"Joey NMT: training {args.steps} updates, then decoding (log: {WORK / 'joey.log'})")
    joey_args = ["--warmup", str(args.warmup), "--check-lines", "0", *decode_args]
    previous = WORK / "joey_result.json"
    if args.reuse_joey and previous.exists() and _same_joey_run(json.loads(previous.read_text()), config, joey_args,
                                                                 args.threads):
        log(f"Joey NMT: reusing {previous} (same config, steps and decoding sets)")
        joey = json.loads(previous.read_text())
    else:
        if args.reuse_joey:
            log("Joey NMT: no previous run with the same settings to reuse")
        joey = run_joey(python, config, previous, args.threads, joey_args, WORK / "joey.log")
        joey["matmul_flops_per_s"] = matmul_rate
        write_text(previous, json.dumps(joey, indent=1, ensure_ascii=False))
    gap_then = machine_gap(joey, matmul_rate)
    speeds_comparable = gap_then is not None and gap_then <= MACHINE_TOLERANCE
    if not speeds_comparable:
        log("WARNING: the reused Joey run was measured on "
            + ("an unknown machine" if gap_then is None else f"a machine {gap_then:.0%} apart in matmul rate")
            + ": its speeds do not compare with this run's; BLEU and loss still do")
    joey["params"] = joey_size["params"]
    log(f"Joey NMT: {joey['train']['tgt_tokens_per_s']:,.1f} target tokens/s")

    # ---- s2s: train and decode
    log(f"s2s: training {args.steps} updates (batch_tokens {batch_tokens})")
    model, s2s_train = train_s2s(params, vocabs, train_data, args.steps, args.warmup,
                                 s2s_start, args.s2s_batching == "joey")
    log(f"s2s: {s2s_train['tgt_tokens_per_s']:,.1f} target tokens/s; decoding")
    torch.save(model.state_dict(), WORK / "s2s_model.pt")  # for a later --decode-only
    decode = partial(decode_s2s_sets, model, vocabs, params, decode_sets, specs)
    s2s_decode = decode()
    s2s = s2s_record(model, s2s_train, s2s_decode)
    same_weights = (decode_same_weights(python, config, model, args.threads, decode_args, s2s_decode, decode, refs)
                    if args.same_weights else None)

    # ---- BLEU and report
    for system in (s2s, joey):
        add_bleu(system, refs)
    result = {**run_record(root, args.threads), "steps": args.steps, "warmup": args.warmup,
              "joey_batch_tokens": JOEY_BATCH_TOKENS, "s2s_batch_tokens": batch_tokens,
              "joey_replayed_tgt_tokens_per_batch": joey_target, "s2s_params": params_to_dict(params),
              "joey_config": config.read_text(), "s2s_init": args.s2s_init, "s2s_batching": args.s2s_batching,
              "function_gap": function_gap_value, "function_probe_pairs": len(probe["pairs"]),
              "matmul_flops_per_s": matmul_rate, "speeds_comparable": speeds_comparable,
              "s2s": s2s, "joeynmt": joey, "same_weights": same_weights,
              "joey_target_entropy": smoothed_target_entropy(params.train.label_smoothing, vocab_size)}
    result["ratios"] = {"train_tgt_tokens_per_s": s2s_train["tgt_tokens_per_s"] / joey["train"]["tgt_tokens_per_s"],
                        **compare_decodes(s2s["decode"], joey["decode"])["ratios"],
                        **{f"bleu_{k}_difference": s2s["bleu"][k] - joey["bleu"][k] for k in s2s["bleu"]}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text(args.out, json.dumps(result, indent=1, ensure_ascii=False))
    print()
    print(f"s2s vs Joey NMT {joey['versions']['joeynmt']} (torch {torch.__version__}, {args.threads} threads), "
          f"{args.steps} updates each, rates after {args.warmup}:")
    print(table(result))
    if not speeds_comparable:
        print("(speed ratios void: Joey's side is a reused run from another machine or load; BLEU and loss hold)")
    if same_weights is not None:
        print("\nDecoding with the same weights (s2s's trained model loaded into Joey), measured in this run:")
        print(same_weights_table(same_weights))
    print(f"\nJSON: {args.out}")


if __name__ == "__main__":
    main()
