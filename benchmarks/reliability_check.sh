#!/usr/bin/env bash
# The check that issue 27's limits and fault handling leave the default experiment's computation
# unchanged: the data stages and 2 epochs of training (426 updates, 1 thread each, the two run side
# by side) with the code before (OLD_REV) and after (NEW_REV), both `python stages/<name>.py`.
# Prints whether the clean text and SentencePiece models are identical bytes, the token arrays
# equal (the tensors now also record the vocabulary's fingerprint), metrics/data.json equal but
# for the new `too_many_chars` count, which lines tensorize truncated, and whether the weights
# and Adam moments of last.pt, model.pt's weights and metrics/train.json are bitwise equal. About
# 20 minutes on 2 cores.
#
#   S2S_MIRROR=../shared/corpora benchmarks/reliability_check.sh [OLD_REV] [NEW_REV] [WORK_DIR]
set -euo pipefail
OLD=${1:-2fc997c} NEW=${2:-72155b2} WORK=${3:-$(mktemp -d)}
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$REPO/.venv/bin/python}
. "$REPO/benchmarks/two_sides.sh"
prepare_sides "$OLD" "$NEW"
run_data_stages
cd "$WORK"
diff -r old/data/clean new/data/clean && echo "data/clean: identical bytes"
diff -r old/data/spm new/data/spm && echo "data/spm: identical bytes"
echo "tensorize warnings (truncated lines) of the new code: $(grep -c 'truncated to' new/tensorize.log || true)"
train_both
"$PY" - <<'PY'
import json
from pathlib import Path
import torch
load = lambda path: torch.load(path, weights_only=True)
same = lambda x, y: x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
for split in sorted(p.name for p in Path("old/data/tensors").iterdir()):
    a, b = load(f"old/data/tensors/{split}"), load(f"new/data/tensors/{split}")
    print(f"data/tensors/{split}: arrays equal:", same(a, {k: v for k, v in b.items() if k != "vocab"}),
          "| new keys:", sorted(set(b) - set(a)))
old_counts, new_counts = (json.load(open(f"{side}/metrics/data.json")) for side in ("old", "new"))
for split, counts in new_counts.items():
    print(f"data.json {split}: lines {counts['lines_in']} -> {counts['lines_out']}, too_many_chars "
          f"{counts['dropped'].pop('too_many_chars')}, otherwise equal: {counts == old_counts[split]}")
a, b = load("old/models/model.pt"), load("new/models/model.pt")
la, lb = load("old/models/last.pt"), load("new/models/last.pt")
print("updates:", la["progress"]["step"], lb["progress"]["step"])
print("model.pt weights bitwise equal:", same(a["model"], b["model"]))
print("last.pt weights bitwise equal:", same(la["model"], lb["model"]))
print("Adam moments bitwise equal:", all(same(sa, sb) for sa, sb in zip(la["optimizer"]["state"].values(),
                                                                         lb["optimizer"]["state"].values())))
print("train.json equal:", json.load(open("old/metrics/train.json")) == json.load(open("new/metrics/train.json")))
print("model.pt params: keys added", sorted(f"{s}.{k}" for s in b["params"] for k in b["params"][s]
                                            if k not in a["params"].get(s, {})))
PY
