"""Cell x attention at one modest, equal budget, run through DVC's experiment queue.

Run from the project root after `dvc repro` (the data stages are then cached and
only train and evaluate run per experiment):

    python benchmarks/attention_sweep.py [--epochs 3] [--emb 128] [--hidden 256]

Prints a Markdown table of valid and test BLEU (greedy) per combination.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time


def dvc(*args: str) -> str:
    return subprocess.run(["dvc", *args], check=True, capture_output=True, text=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--emb", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=256)
    args = parser.parse_args()
    budget = ["-S", f"model.emb={args.emb}", "-S", f"model.hidden={args.hidden}",
              "-S", f"train.max_epochs={args.epochs}", "-S", "train.patience=100", "-S", "eval.beam=1",
              "-S", "train.average_last=0"]  # no averaging, as when the README table was made
    started = time.time()
    dvc("exp", "run", "--queue", "-S", "model.cell=gru,lstm", "-S", "model.attention=bahdanau,luong,none", *budget)
    dvc("queue", "start", "-j", "1")
    while any(word in dvc("queue", "status") for word in ("Queued", "Running")):
        time.sleep(10)
    rows = []
    for commit in json.loads(dvc("exp", "show", "--json")):
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs", []):
                data = rev.get("data") or {}
                model = data.get("params", {}).get("params.yaml", {}).get("data", {}).get("model", {})
                scores = data.get("metrics", {}).get("metrics/eval.json", {}).get("data", {})
                train = data.get("metrics", {}).get("metrics/train.json", {}).get("data", {})
                if model.get("emb") == args.emb and model.get("hidden") == args.hidden and scores:
                    rows.append((model["cell"], model["attention"], train.get("params"),
                                 scores["valid"]["bleu"], scores["test_2016_flickr"]["bleu"]))
    print(f"{args.epochs} epochs, emb {args.emb}, hidden {args.hidden}, greedy decoding; "
          f"{(time.time() - started) / 60:.0f} minutes in all\n")
    print("| cell | attention | parameters | valid BLEU | test 2016 BLEU |")
    print("|---|---|---|---|---|")
    for cell, attention, n_params, valid, test in sorted(rows):
        print(f"| {cell} | {attention} | {n_params:,} | {valid:.2f} | {test:.2f} |")


if __name__ == "__main__":
    main()
