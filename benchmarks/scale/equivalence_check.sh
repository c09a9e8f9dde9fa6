#!/usr/bin/env bash
# The check that issue 28 (streaming data stages, memory-mapped tensors, training by steps, the
# background batch thread) leaves the default experiment's computation unchanged: the data
# stages and 2 epochs of training (426 updates, 1 thread each, the two run side by side) with the
# code before (OLD_REV) and after (NEW_REV), both `python stages/<name>.py`. Prints whether the
# clean text, SentencePiece models and metrics/data.json are identical bytes, whether the token
# arrays are equal (one .pt file per split before, .npy arrays now), and whether the weights and
# Adam moments of last.pt, model.pt's weights and metrics/train.json (less its new keys) are
# bitwise equal. About 20 minutes on 2 cores.
#
#   S2S_MIRROR=../shared/corpora benchmarks/scale/equivalence_check.sh [OLD_REV] [NEW_REV] [WORK_DIR]
set -euo pipefail
OLD=${1:-9fd97f9} NEW=${2:-b00164b} WORK=${3:-$(mktemp -d)}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-$REPO/.venv/bin/python}
. "$REPO/benchmarks/two_sides.sh"
prepare_sides "$OLD" "$NEW"
run_data_stages
cd "$WORK"
diff -r old/data/clean new/data/clean && echo "data/clean: identical bytes"
diff -r old/data/spm new/data/spm && echo "data/spm: identical bytes"
cmp old/metrics/data.json new/metrics/data.json && echo "metrics/data.json: identical bytes"
train_both
PYTHONPATH=new/src "$PY" - <<'PY'
import json
from pathlib import Path
import numpy as np
import torch
from s2s.tensors import ParallelData
load = lambda path: torch.load(path, weights_only=True)
same = lambda x, y: x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
for path in sorted(Path("old/data/tensors").iterdir()):
    old, new = load(path), ParallelData.load(Path("new/data/tensors") / path.stem)
    arrays = {"src": new.src_ids, "src_offsets": new.src_offsets, "tgt": new.tgt_ids, "tgt_offsets": new.tgt_offsets}
    print(f"data/tensors/{path.stem}: arrays equal:", all(np.array_equal(old[k].numpy(), v) for k, v in arrays.items()),
          "| vocabulary record equal:", old["vocab"] == new.vocab)
a, b = load("old/models/model.pt"), load("new/models/model.pt")
la, lb = load("old/models/last.pt"), load("new/models/last.pt")
print("updates:", la["progress"]["step"], lb["progress"]["step"])
print("model.pt weights bitwise equal:", same(a["model"], b["model"]))
print("last.pt weights bitwise equal:", same(la["model"], lb["model"]))
print("Adam moments bitwise equal:", all(same(sa, sb) for sa, sb in zip(la["optimizer"]["state"].values(),
                                                                         lb["optimizer"]["state"].values())))
old_train, new_train = (json.load(open(f"{side}/metrics/train.json")) for side in ("old", "new"))
added = sorted(set(new_train) - set(old_train))
print("train.json equal but for the keys added:", old_train == {k: v for k, v in new_train.items() if k not in added},
      "| added:", {k: new_train[k] for k in added})
curves = lambda side: sorted(Path(f"{side}/plots/train").rglob("*.tsv"))
for x, y in zip(curves("old"), curves("new")):
    if "tokens_per_s" not in x.name:
        print(f"{x.relative_to('old')}: identical:", x.read_bytes() == y.read_bytes())
print("model.pt params: keys added", sorted(f"{s}.{k}" for s in b["params"] for k in b["params"][s]
                                            if k not in a["params"].get(s, {})))
PY
