"""Peer benchmark: s2s against Joey NMT 2.3.0 at the identical architecture (issue 6), in one command.

    .venv/bin/python benchmarks/peers/joeynmt/run.py --root /work/run-default --steps 300

``--root`` is a project checkout where the data stages have run (data/clean,
data/spm/spm.model, data/tensors, data/raw/multi30k). The script

1. creates ``benchmarks/peers/joeynmt/.venv`` with Joey NMT 2.3.0 if it is missing
   (``environment.py``);
2. gives Joey the same cleaned text, the same joint SentencePiece model (its
   sentencepiece tokenizer, with a vocabulary file of the model's pieces in id
   order) and the architecture of issue 6 (``joey.py``); builds both models and stops unless their
   parameter counts agree within 2% and, from Joey's initial weights, their log-probabilities
   within 1e-3 (``weights.py``);
3. trains each for ``--steps`` updates from scratch (Adam 1e-3 constant, the same
   label smoothing and clipping, no validation) and measures target tokens/s after
   ``--warmup`` updates: Joey with its token batches of 4096 (padding counted, not
   bucketed), s2s with length-bucketed batches whose budget is chosen so that the
   mean real target tokens per batch matches Joey's (``measure.py``);
4. decodes test_2016_flickr with each trained model, greedy and beam 5 at batch 64,
   and at batch 1 on the first ``--batch1-sentences``; sentences/s, and sacreBLEU of
   the batch-64 outputs against the raw references;
5. with ``--same-weights``, hands s2s's trained weights to Joey and decodes the same
   sets with Joey once more: both decoders then run one model, so their speeds compare
   without a quality caveat, and their outputs should agree;
6. prints a table with the ratios s2s/Joey and writes everything, with its provenance, to
   ``--out`` (JSON; ``report.py``).

Both sides use ``--threads`` torch threads (2 on the 2-core machine of issue 6).
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

from environment import RESULTS, WORK, ensure_project_python, log

ensure_project_python(Path(__file__))  # s2s comes from the project's environment

import torch  # noqa: E402

from joey import JOEY_BATCH_TOKENS, train_joey  # noqa: E402
from measure import (add_bleu, compare_decodes, decode_s2s_sets, decode_same_weights,  # noqa: E402
                     machine_rate, smoothed_target_entropy, train_s2s)
from prepare import (Checked, Decoding, S2SSide, check_root, check_same_model,  # noqa: E402
                     prepare_decoding, prepare_s2s)
from report import Provenance, run_record, s2s_record, same_weights_table, table, write_result  # noqa: E402
from s2s.config import params_to_dict  # noqa: E402


def parse_args() -> argparse.Namespace:
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
    parser.add_argument("--out", type=Path, default=RESULTS / "result.json")
    parser.add_argument("--reuse-joey", action="store_true",
                        help="take Joey's figures from the last run (work/joey_result.json) when its config, "
                             "steps and decoding sets are the same; for re-measuring s2s alone")
    args = parser.parse_args()
    if args.s2s_only and (args.decode_only or args.same_weights or args.reuse_joey):
        sys.exit("--s2s-only trains s2s alone, with no Joey run: drop --decode-only, --same-weights and --reuse-joey")
    if not args.decode_only and not 0 <= args.warmup < args.steps:
        sys.exit("--warmup must be at least 0 and below --steps")
    return args


def decode_only(args: argparse.Namespace, root: Path, provenance: Provenance, s2s: S2SSide, decoding: Decoding,
                checked: Checked) -> None:
    """``--decode-only WEIGHTS``: both decoders on those s2s weights, s2s bracketing Joey."""
    if not args.decode_only.is_file():
        sys.exit(f"{args.decode_only}: no such file; a run without --decode-only saves work/s2s_model.pt")
    model = checked.s2s_model
    try:
        model.load_state_dict(torch.load(args.decode_only, weights_only=True))
    except RuntimeError as error:
        sys.exit(f"{args.decode_only}: not weights of this architecture ({str(error).splitlines()[0]}); "
                 "pass the -S overrides of the run that saved them")
    decode = partial(decode_s2s_sets, model, s2s.vocabs, s2s.params, decoding.sets, decoding.specs)
    same_weights = decode_same_weights(checked.python, checked.config, model, args.threads, decoding.joey_args,
                                       decode(), decode, decoding.refs)
    write_result(args.out, provenance, {
        **run_record(root, args.threads), "weights": str(args.decode_only.resolve()),
        "s2s_params": params_to_dict(s2s.params), "joey_config": checked.config.read_text(),
        "function_gap": checked.function_gap, "matmul_flops_per_s": provenance.matmul_flops_per_s,
        "same_weights": same_weights})
    print(f"\ns2s vs Joey NMT decoding one model ({args.decode_only}; torch {torch.__version__}, "
          f"{args.threads} threads):")
    print(same_weights_table(same_weights))
    print(f"\nJSON: {args.out}")


def trained_s2s(args: argparse.Namespace, s2s: S2SSide, checked: Checked) -> tuple:
    """s2s trained for ``--steps`` updates from its own draws or Joey's initial weights (``--s2s-init``);
    the weights are kept in work/s2s_model.pt for a later ``--decode-only``."""
    start = checked.joey_start if args.s2s_init == "joey" else None
    model, train = train_s2s(s2s.params, s2s.vocabs, s2s.train_data, args.steps, args.warmup, start,
                             args.s2s_batching == "joey")
    torch.save(model.state_dict(), WORK / "s2s_model.pt")
    return model, train


def s2s_only(args: argparse.Namespace, root: Path, provenance: Provenance, s2s: S2SSide, decoding: Decoding,
             checked: Checked) -> None:
    """``--s2s-only``: s2s trained and decoded alone, one more sample of its BLEU and loss."""
    model, s2s_train = trained_s2s(args, s2s, checked)
    side = s2s_record(model, s2s_train, decode_s2s_sets(model, s2s.vocabs, s2s.params, decoding.sets, decoding.specs))
    add_bleu(side, decoding.refs)
    write_result(args.out, provenance, {
        **run_record(root, args.threads), "steps": args.steps, "warmup": args.warmup,
        "s2s_batch_tokens": s2s.batch_tokens, "s2s_params": params_to_dict(s2s.params),
        "joey_config": checked.config.read_text(), "s2s_init": args.s2s_init, "s2s_batching": args.s2s_batching,
        "matmul_flops_per_s": provenance.matmul_flops_per_s, "s2s": side, "joeynmt": None})
    print(f"\ns2s alone, {args.steps} updates: loss {s2s_train['mean_loss_last10']:.3f} (last 10), "
          f"BLEU test 2016 greedy {side['bleu']['greedy']:.2f}, beam {side['bleu']['beam']:.2f}\nJSON: {args.out}")


def both(args: argparse.Namespace, root: Path, provenance: Provenance, s2s: S2SSide, decoding: Decoding,
         checked: Checked) -> None:
    """Both systems trained for ``--steps`` updates and decoded; with ``--same-weights`` both decoders
    on s2s's model too."""
    joey, speeds_comparable = train_joey(checked.python, checked.config, args.steps, args.warmup, args.threads,
                                         decoding.joey_args, provenance.matmul_flops_per_s, args.reuse_joey)
    joey["params"] = checked.joey_params
    log(f"Joey NMT: {joey['train']['tgt_tokens_per_s']:,.1f} target tokens/s")
    log(f"s2s: training {args.steps} updates (batch_tokens {s2s.batch_tokens})")
    model, s2s_train = trained_s2s(args, s2s, checked)
    log(f"s2s: {s2s_train['tgt_tokens_per_s']:,.1f} target tokens/s; decoding")
    decode = partial(decode_s2s_sets, model, s2s.vocabs, s2s.params, decoding.sets, decoding.specs)
    s2s_decode = decode()
    side = s2s_record(model, s2s_train, s2s_decode)
    same_weights = (decode_same_weights(checked.python, checked.config, model, args.threads, decoding.joey_args,
                                        s2s_decode, decode, decoding.refs) if args.same_weights else None)
    for system in (side, joey):
        add_bleu(system, decoding.refs)
    result = {**run_record(root, args.threads), "steps": args.steps, "warmup": args.warmup,
              "joey_batch_tokens": JOEY_BATCH_TOKENS, "s2s_batch_tokens": s2s.batch_tokens,
              "joey_replayed_tgt_tokens_per_batch": s2s.joey_target, "s2s_params": params_to_dict(s2s.params),
              "joey_config": checked.config.read_text(), "s2s_init": args.s2s_init,
              "s2s_batching": args.s2s_batching, "function_gap": checked.function_gap,
              "function_probe_pairs": checked.probe_pairs, "matmul_flops_per_s": provenance.matmul_flops_per_s,
              "speeds_comparable": speeds_comparable, "s2s": side, "joeynmt": joey, "same_weights": same_weights,
              "joey_target_entropy": smoothed_target_entropy(s2s.params.train.label_smoothing, checked.vocab_size)}
    result["ratios"] = {"train_tgt_tokens_per_s": s2s_train["tgt_tokens_per_s"] / joey["train"]["tgt_tokens_per_s"],
                        **compare_decodes(side["decode"], joey["decode"])["ratios"],
                        **{f"bleu_{k}_difference": side["bleu"][k] - joey["bleu"][k] for k in side["bleu"]}}
    write_result(args.out, provenance, result)
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


def main() -> None:
    args = parse_args()
    root = args.root.resolve()
    check_root(root)
    torch.set_num_threads(args.threads)
    WORK.mkdir(exist_ok=True)
    matmul_rate = machine_rate()
    log(f"this machine: {matmul_rate / 1e9:,.1f} GFLOP/s float32 matrix product on {args.threads} threads")
    provenance = Provenance.collect(matmul_rate)
    if provenance.dirty:
        log("the work tree differs from its commit (git status --porcelain): the result records it as dirty")
    s2s = prepare_s2s(root, args.threads, args.overrides, args.s2s_batching == "joey", args.s2s_batch_tokens)
    decoding = prepare_decoding(root, args.test_sentences, args.batch1_sentences, args.beams)
    checked = check_same_model(root, args.steps, args.threads, s2s)
    mode = decode_only if args.decode_only else s2s_only if args.s2s_only else both
    mode(args, root, provenance, s2s, decoding, checked)


if __name__ == "__main__":
    main()
