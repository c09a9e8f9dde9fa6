"""Joey NMT's side as run.py drives it: its vocabulary file, its config, its subprocess
(``joey_side.py`` in Joey's venv), and whether an earlier Joey run can be reused."""

from __future__ import annotations

import json
import os
import string
import subprocess
import sys
from pathlib import Path

from environment import HERE, WORK, log
from s2s.atomic import write_text
from s2s.config import Params
from s2s.model.initialization import uniform_bound

JOEY_BATCH_TOKENS = 4096  # issue 6: Joey's token batches of 4096 (padding included)
# A reused Joey run's speeds compare with this run's only on a machine this close in matmul rate
# (the best of three measurements varies by up to ~20% on one shared machine; kinds differ by 2x+).
MACHINE_TOLERANCE = 0.3


def write_vocab(spm_model: Path, path: Path) -> int:
    """Joey's vocabulary file: the SentencePiece pieces after the 4 specials, in id order, so that
    Joey's ids are SentencePiece's (Joey puts <unk> <pad> <s> </s> first, pad and unk swapped).
    Returns the vocabulary size."""
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
    """``joey.yaml.tmpl`` filled in from s2s's params (sizes, dropout, rate, initial bound, smoothing,
    clipping, length penalty) and ``steps``; written to ``work/joey.yaml``. Validation is scheduled
    beyond the last update, so none runs."""
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
    """Run ``joey_side.py`` under Joey's ``python`` on ``threads`` threads with ``extra`` arguments,
    its output in ``log_path``; returns the JSON it wrote to ``out``, or stops with the log's tail."""
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


def machine_gap(previous: dict, matmul_rate: float) -> float | None:
    """Relative difference of the matrix-product rate measured with a reused Joey run and now; None
    when that run recorded none (older results)."""
    then = previous.get("matmul_flops_per_s")
    return None if not then else abs(matmul_rate - then) / then


def same_joey_run(previous: dict, config: Path, joey_args: list[str], threads: int) -> bool:
    """Whether the Joey run ``previous`` (work/joey_result.json) had this config, warm-up, decoding
    sets and threads, so that ``--reuse-joey`` may take its figures."""
    decode = joey_args[joey_args.index("--decode") + 1:]
    return (previous.get("config_text") == config.read_text() and previous.get("decode_specs") == decode
            and previous.get("warmup") == int(joey_args[1]) and previous.get("threads") == threads)


def train_joey(python: Path, config: Path, steps: int, warmup: int, threads: int, decode_args: list[str],
               matmul_rate: float, reuse: bool) -> tuple[dict, bool]:
    """Joey trained for ``steps`` updates and decoded (``decode_args``: joey_side.py's ``--decode``), or,
    with ``reuse``, its last run (work/joey_result.json) when that had the same settings; and whether its
    speeds compare with this run's (the machine's matmul rate then and now within ``MACHINE_TOLERANCE``)."""
    log(f"Joey NMT: training {steps} updates, then decoding (log: {WORK / 'joey.log'})")
    joey_args = ["--warmup", str(warmup), "--check-lines", "0", *decode_args]
    previous = WORK / "joey_result.json"
    if reuse and previous.exists() and same_joey_run(json.loads(previous.read_text()), config, joey_args, threads):
        log(f"Joey NMT: reusing {previous} (same config, steps and decoding sets)")
        joey = json.loads(previous.read_text())
    else:
        if reuse:
            log("Joey NMT: no previous run with the same settings to reuse")
        joey = run_joey(python, config, previous, threads, joey_args, WORK / "joey.log")
        joey["matmul_flops_per_s"] = matmul_rate
        write_text(previous, json.dumps(joey, indent=1, ensure_ascii=False))
    gap_then = machine_gap(joey, matmul_rate)
    comparable = gap_then is not None and gap_then <= MACHINE_TOLERANCE
    if not comparable:
        log("WARNING: the reused Joey run was measured on "
            + ("an unknown machine" if gap_then is None else f"a machine {gap_then:.0%} apart in matmul rate")
            + ": its speeds do not compare with this run's; BLEU and loss still do")
    return joey, comparable
