#!/usr/bin/env bash
# Variance over seeds and the ensemble of the seeds (docs/experiments.md, "Seeds and ensembles").
#
#   benchmarks/seed_study.sh [train|ensemble|all]      (from the project root, after `dvc repro`)
#
# train:    queues three DVC experiments seed1..seed3 of a small budget (emb 128, hidden 256,
#           12 epochs; everything else default) and runs them one after the other.
# ensemble: in a scratch clone ($STUDY_DIR, default /tmp/s2s-seed-study) sharing this project's DVC
#           cache, evaluates the ensemble of the three models (eval.ensemble: seed1's model.pt with
#           seed2's and seed3's) with the evaluate stage, then prints `s2s compare`'s tables: the
#           three seeds (mean ± sd) against the ensemble, and the best seed (by valid BLEU) against
#           the ensemble, paired. Nothing in this checkout changes.
set -euo pipefail
what="${1:-all}"
root="$(pwd)"
study="${STUDY_DIR:-/tmp/s2s-seed-study}"
budget=(-S model.emb=128 -S model.hidden=256 -S train.max_epochs=12)

if [[ "$what" == train || "$what" == all ]]; then
  for seed in 1 2 3; do
    dvc exp run --queue -n "seed$seed" "${budget[@]}" -S "train.seed=$seed"
  done
  dvc queue start -j 1
  while dvc queue status | grep -qE "Queued|Running"; do sleep 30; done
  dvc queue status
fi

if [[ "$what" == ensemble || "$what" == all ]]; then
  rm -rf "$study"
  git clone -q "$root" "$study"
  cd "$study"
  git fetch -q "$root" 'refs/exps/*:refs/exps/*'     # the experiments are git refs of the project
  dvc cache dir --local "$root/.dvc/cache"
  dvc checkout -q data/raw data/tensors
  mkdir -p models/members
  python - <<'EOF'
from dvc.api import DVCFileSystem
for seed in (1, 2, 3):
    target = "models/model.pt" if seed == 1 else f"models/members/seed{seed}.pt"
    DVCFileSystem(".", rev=f"seed{seed}").get_file("models/model.pt", target)
EOF
  python - <<'EOF'
import hashlib, yaml
params = yaml.safe_load(open("params.yaml"))
params["eval"]["ensemble"] = [{"path": f"models/members/seed{s}.pt",
                               "sha256": hashlib.sha256(open(f"models/members/seed{s}.pt", "rb").read()).hexdigest()}
                              for s in (2, 3)]
yaml.safe_dump(params, open("params.yaml", "w"), sort_keys=False)
EOF
  python stages/evaluate.py
  echo "== The three seeds against their ensemble (the workspace of $study)"
  s2s compare --against seed1 --against seed2 --against seed3 --md --out "$study/compare_seeds.json"
fi
