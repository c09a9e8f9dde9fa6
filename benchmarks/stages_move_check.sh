#!/usr/bin/env bash
# The bitwise check of the move to stages/ (issue 26): the default experiment's data stages and
# 2 epochs of training (426 updates, 1 thread each, the two run side by side) with the code before
# the move (`s2s <stage>` subcommands, src/s2s/pipeline.py) and after it (`python stages/<name>.py`).
# Prints whether the data directories, models/model.pt, last.pt's weights and Adam moments and
# metrics/train.json are identical. About 20 minutes on 2 cores.
#
#   S2S_MIRROR=../shared/corpora benchmarks/stages_move_check.sh [OLD_REV] [NEW_REV] [WORK_DIR]
set -euo pipefail
OLD=${1:-af2b4d9} NEW=${2:-HEAD} WORK=${3:-$(mktemp -d)}
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$REPO/.venv/bin/python}
export S2S_CACHE=${S2S_CACHE:-$WORK/cache} DVC_NO_ANALYTICS=1
mkdir -p "$WORK/old" "$WORK/new"
git -C "$REPO" archive "$OLD" src params.yaml | tar -x -C "$WORK/old"
git -C "$REPO" archive "$NEW" src stages params.yaml | tar -x -C "$WORK/new"
cd "$WORK"
for side in old new; do
  "$PY" -c "import yaml, sys; p = yaml.safe_load(open('$side/params.yaml')); p['train'].update(max_epochs=2, threads=1); yaml.safe_dump(p, open('$side/params.yaml', 'w'), sort_keys=False)"
done
for stage in download clean spm tensorize; do
  PYTHONPATH=old/src "$PY" -m s2s.cli "$stage" --root old --params old/params.yaml
  "$PY" new/stages/$stage.py
done
diff -r old/data new/data && echo "data stages: identical bytes"
(PYTHONPATH=old/src "$PY" -m s2s.cli train --root old --params old/params.yaml > old/train.log 2>&1) &
("$PY" new/stages/train.py > new/train.log 2>&1) &
wait
"$PY" - <<'PY'
import json
import torch
a, b = (torch.load(f"{side}/models/model.pt", weights_only=False) for side in ("old", "new"))
la, lb = (torch.load(f"{side}/models/last.pt", weights_only=False) for side in ("old", "new"))
same = lambda x, y: x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
print("updates:", la["progress"]["step"], lb["progress"]["step"])
print("model.pt weights bitwise equal:", same(a["model"], b["model"]))
print("last.pt weights bitwise equal:", same(la["model"], lb["model"]))
print("Adam moments bitwise equal:", all(same(sa, sb) for sa, sb in zip(la["optimizer"]["state"].values(),
                                                                         lb["optimizer"]["state"].values())))
print("train.json equal:", json.load(open("old/metrics/train.json")) == json.load(open("new/metrics/train.json")))
PY
cmp old/models/model.pt new/models/model.pt && echo "models/model.pt: identical bytes"
