"""The Joey NMT half of the peer benchmark; runs inside this folder's .venv (Joey NMT 2.3.0).

Started by run.py, never by hand. Builds the model and data with Joey's own API
(``prepare``), trains with Joey's own ``TrainManager.train_and_validate`` for a fixed
number of updates (validation frequency beyond them), times every update through
optimizer hooks, then decodes with Joey's ``predict`` and writes one JSON. With
``--load-weights`` it trains nothing and decodes with the given weights (s2s's, mapped
to Joey's names by run.py), so the two systems' decoders can be timed on one model.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from importlib.metadata import version
from pathlib import Path

import torch

SPM_TO_JOEY = {0: 1, 1: 0}  # SentencePiece has pad 0, unk 1; Joey unk 0, pad 1; the rest agree


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--count-only", action="store_true", help="build the model, write its size, stop")
    parser.add_argument("--dump-init", default="",
                        help="with --count-only: write the initial weights and Joey's log-probabilities of the "
                             "first --probe-lines training pairs (eval mode) to this .pt file")
    parser.add_argument("--probe-lines", type=int, default=200)
    parser.add_argument("--decode", nargs="*", default=[],
                        help="NAME=PREFIX:BATCH:BEAM; decodes PREFIX.src (no references) with Joey's predict")
    parser.add_argument("--load-weights", default="",
                        help="a .pt file of {'state_dict', 'output_bias'}: decode with these weights, train nothing")
    parser.add_argument("--check-lines", type=int, default=500,
                        help="training lines whose Joey ids are checked against plain SentencePiece ids")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from joeynmt.config import load_config, parse_global_args, set_validation_args
    from joeynmt.helpers_for_ddp import get_logger
    from joeynmt.prediction import prepare
    from joeynmt.training import TrainManager

    cfg = load_config(args.config)
    model_dir = Path(cfg["model_dir"])
    if not args.load_weights:  # a decoding-only run leaves the last training run's directory alone
        shutil.rmtree(model_dir, ignore_errors=True)
    model_dir.mkdir(parents=True, exist_ok=True)
    get_logger("", log_file=(model_dir / ("decode.log" if args.load_weights else "train.log")).as_posix())
    joey = parse_global_args(cfg, rank=0, mode="train")
    model, train_data, dev_data, _ = prepare(joey, rank=0, mode="train")
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    result = {"system": "joeynmt", "versions": {p: version(p) for p in ("joeynmt", "torch", "sentencepiece")},
              "threads": torch.get_num_threads(), "params": n_params,
              "vocab": [len(model.src_vocab), len(model.trg_vocab)],
              "param_shapes": {n: list(p.shape) for n, p in model.named_parameters()}}
    result["tokenization_mismatches"] = check_tokenization(train_data, model, cfg, args.check_lines)
    result["config_text"] = Path(args.config).read_text()
    result["decode_specs"], result["warmup"] = args.decode, args.warmup
    if args.dump_init:
        torch.save(probe_function(model, cfg, args.probe_lines), args.dump_init)
    if args.count_only:
        Path(args.out).write_text(json.dumps(result, indent=1))
        return
    if args.load_weights:
        load_weights(model, args.load_weights)
        result["decode"] = decode(model, joey, train_data, args.decode)
        Path(args.out).write_text(json.dumps(result, indent=1))
        return

    trainer = TrainManager(model=model, model_dir=joey.model_dir, device=joey.device, n_gpu=joey.n_gpu, rank=0,
                           num_workers=joey.num_workers, autocast=joey.autocast, seed=joey.seed,
                           train_args=joey.train, dev_args=set_validation_args(joey.test))
    steps = []  # one dict per batch / update
    inner = trainer._train_step

    def timed_train_step(batch):  # forward + loss + backward of one batch
        started = time.perf_counter()
        out = inner(batch)
        steps.append({"begin": started, "end": time.perf_counter(), "tokens": int(batch.ntokens),
                      "sentences": int(batch.nseqs), "tgt_positions": int(batch.trg.numel()),
                      "src_positions": int(batch.src.numel()), "loss": float(out[0])})
        return out

    trainer._train_step = timed_train_step
    trainer.optimizer.register_step_pre_hook(lambda *_: steps[-1].__setitem__("opt_begin", time.perf_counter()))
    trainer.optimizer.register_step_post_hook(lambda *_: steps[-1].__setitem__("opt_end", time.perf_counter()))
    started = time.perf_counter()
    trainer.train_and_validate(train_data=train_data, valid_data=dev_data)
    result["train_wall_seconds"] = time.perf_counter() - started
    result["train"] = summarize(steps, args.warmup)

    result["decode"] = decode(model, joey, train_data, args.decode)
    Path(args.out).write_text(json.dumps(result, indent=1))


def decode(model, joey, train_data, specs: list[str]) -> list[dict]:
    """Decode each NAME=PREFIX:BATCH:BEAM with Joey's ``predict``, timed from data to text."""
    from joeynmt.datasets import build_dataset
    from joeynmt.prediction import predict

    results = []
    for spec in specs:
        name, rest = spec.split("=", 1)
        prefix, batch_size, beam = rest.rsplit(":", 2)
        data = build_dataset(dataset_type="plain", path=prefix, src_lang=train_data.src_lang,
                             trg_lang=train_data.trg_lang, split="test", tokenizer=train_data.tokenizer,
                             sequence_encoder=train_data.sequence_encoder, has_prompt=train_data.has_prompt)
        assert not data.has_trg, f"{prefix}.{train_data.trg_lang} exists: decoding must not score references"
        test_args = joey.test._replace(batch_size=int(batch_size), batch_type="sentence", beam_size=int(beam),
                                       n_best=1, eval_metrics=[], return_attention=False, return_prob="none")
        data.reset_indices(random_subset=-1)
        began = time.perf_counter()
        _, _, hyps, decoded, _, _ = predict(model=model, data=data, device=joey.device, n_gpu=joey.n_gpu, rank=0,
                                            compute_loss=False, num_workers=0, args=test_args,
                                            autocast=joey.autocast)
        elapsed = time.perf_counter() - began
        eos = model.trg_vocab._itos[model.eos_index]
        out_tokens = sum(len([t for t in seq if t != eos]) + 1 for seq in decoded)
        results.append({"name": name, "batch_size": int(batch_size), "beam": int(beam), "sentences": len(hyps),
                        "seconds": elapsed, "sentences_per_s": len(hyps) / elapsed,
                        "tgt_tokens_per_s": out_tokens / elapsed, "hyps": hyps})
    return results


def load_weights(model, path: str) -> None:
    """Load run.py's hand-off of s2s's weights. Joey's output layer has no bias and s2s's has one, so
    the layer becomes a biased ``nn.Linear`` over the same weight (one vector add per step)."""
    saved = torch.load(path, weights_only=True)
    model.load_state_dict(saved["state_dict"], strict=True)
    layer = model.decoder.output_layer
    biased = torch.nn.Linear(layer.in_features, layer.out_features, bias=True)
    biased.weight = layer.weight
    with torch.no_grad():
        biased.bias.copy_(saved["output_bias"])
    model.decoder.output_layer = biased


def summarize(steps: list[dict], warmup: int) -> dict:
    """Steady-state rate: the wall time from the end of update ``warmup`` to the end of the last,
    so Joey's data loading (tokenization, batching, padding) counts as it does for the user."""
    if len(steps) <= warmup:
        raise SystemExit(f"only {len(steps)} updates ran, not more than the {warmup} warm-up ones")
    timed = steps[warmup:]
    wall = timed[-1]["opt_end"] - steps[warmup - 1]["opt_end"] if warmup else timed[-1]["opt_end"] - timed[0]["begin"]
    tokens = sum(s["tokens"] for s in timed)
    fwd_bwd = sum(s["end"] - s["begin"] for s in timed)
    clip_step = sum(s["opt_end"] - s["end"] for s in timed)
    return {"steps": len(steps), "warmup_steps": warmup, "timed_steps": len(timed), "seconds": wall,
            "tgt_tokens": tokens, "tgt_tokens_per_s": tokens / wall,
            "seconds_per_step": wall / len(timed),
            "mean_tgt_tokens_per_batch": tokens / len(timed),
            "mean_tgt_tokens_per_batch_all": sum(s["tokens"] for s in steps) / len(steps),
            "mean_sentences_per_batch": sum(s["sentences"] for s in timed) / len(timed),
            "padding_fraction": 1 - tokens / sum(s["tgt_positions"] for s in timed),
            "share_forward_backward": fwd_bwd / wall, "share_clip_and_adam": clip_step / wall,
            "share_data_and_other": 1 - (fwd_bwd + clip_step) / wall,
            "mean_loss_first10": sum(s["loss"] for s in steps[:10]) / len(steps[:10]),
            "mean_loss_last10": sum(s["loss"] for s in steps[-10:]) / len(steps[-10:])}


def probe_function(model, cfg: dict, lines: int) -> dict:
    """Joey's initial weights and, in eval mode, its log-probability of each reference token of the
    first training pairs, so that run.py can load the weights into s2s and compare the two functions.
    Ids are SentencePiece's (Joey's with pad and unk swapped back)."""
    import sentencepiece as spm

    proc = spm.SentencePieceProcessor(model_file=cfg["data"]["src"]["tokenizer_cfg"]["model_file"])
    prefix = cfg["data"]["train"]
    with open(f"{prefix}.src", encoding="utf-8") as src_file, open(f"{prefix}.tgt", encoding="utf-8") as tgt_file:
        pairs = [(proc.encode(s.rstrip("\n")), proc.encode(t.rstrip("\n"))) for s, t, _ in zip(src_file, tgt_file,
                                                                                             range(lines))]
    pad, bos, eos = model.pad_index, model.bos_index, model.eos_index
    order = sorted(range(len(pairs)), key=lambda i: -len(pairs[i][0]))  # Joey packs sources sorted
    srcs = [[SPM_TO_JOEY.get(i, i) for i in pairs[k][0]] + [eos] for k in order]
    tgts = [[SPM_TO_JOEY.get(i, i) for i in pairs[k][1]] for k in order]
    src = torch.full((len(srcs), max(map(len, srcs))), pad)
    trg_in = torch.full((len(tgts), max(map(len, tgts)) + 1), pad)
    trg_out = torch.full_like(trg_in, pad)
    for row, (s, t) in enumerate(zip(srcs, tgts)):
        src[row, :len(s)] = torch.tensor(s)
        trg_in[row, :len(t) + 1] = torch.tensor([bos] + t)
        trg_out[row, :len(t) + 1] = torch.tensor(t + [eos])
    model.eval()
    with torch.no_grad():
        out, _, _, _ = model._encode_decode(src=src, trg_input=trg_in, src_mask=(src != pad).unsqueeze(1),
                                            src_length=(src != pad).sum(1), trg_mask=(trg_in != pad).unsqueeze(1))
        log_probs = torch.log_softmax(out, dim=-1).gather(2, trg_out.unsqueeze(2)).squeeze(2)
    model.train()
    rows = sorted(range(len(order)), key=lambda r: order[r])  # back to file order
    return {"state_dict": {k: v.clone() for k, v in model.state_dict().items()},
            "pairs": pairs, "log_probs": [log_probs[r, :len(pairs[order[r]][1]) + 1].tolist() for r in rows]}


def check_tokenization(train_data, model, cfg: dict, lines: int) -> int:
    """Joey's ids of the first training lines against SentencePiece's own ids (pad/unk swapped:
    ``SPM_TO_JOEY``). Returns the number of lines that differ."""
    import sentencepiece as spm

    proc = spm.SentencePieceProcessor(model_file=cfg["data"]["src"]["tokenizer_cfg"]["model_file"])
    bad = 0
    for lang, vocab in ((train_data.src_lang, model.src_vocab), (train_data.trg_lang, model.trg_vocab)):
        raw = train_data.get_list(lang=lang, tokenized=False, subsampled=False)[:lines]
        for line in raw:
            joey_ids = [vocab.lookup(t) for t in train_data.tokenizer[lang](line, is_train=False)]
            spm_ids = [SPM_TO_JOEY.get(i, i) for i in proc.encode(line)]
            bad += joey_ids != spm_ids
    return bad


if __name__ == "__main__":
    sys.exit(main())
