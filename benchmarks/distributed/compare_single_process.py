"""Compare two train-stage runs of one process, before and after a change: weights, optimizer, RNG,
progress, train.json and the curves, byte for byte. Usage: compare_single_process.py OLD_ROOT NEW_ROOT."""
import glob
import os
import sys

import torch

o, n = sys.argv[1:3] if len(sys.argv) == 3 else ("/tmp/bw/old", "/tmp/bw/new")  # the two project roots
a = torch.load(f"{o}/models/last.pt", weights_only=True); b = torch.load(f"{n}/models/last.pt", weights_only=True)
print("steps", a["progress"]["step"], b["progress"]["step"], "world_size" in a, b.get("world_size"))
eq = all(torch.equal(v, b["model"][k]) for k, v in a["model"].items())
print("last.pt model weights bitwise equal:", eq)
sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
print("optimizer state bitwise equal:", all(torch.equal(sa[i][k], sb[i][k]) for i in sa for k in sa[i]))
print("rng equal:", torch.equal(a["rng"], b["rng"]))
pa, pb = dict(a["progress"]), dict(b["progress"])
for p in (pa, pb):
    for k in ("seconds", "window_seconds"): p.pop(k)
print("progress equal (times aside):", pa == pb)
ma = torch.load(f"{o}/models/model.pt", weights_only=True); mb = torch.load(f"{n}/models/model.pt", weights_only=True)
print("model.pt weights bitwise equal:", all(torch.equal(v, mb["model"][k]) for k, v in ma["model"].items()))
pa, pb = ma["params"], mb["params"]
print("model.pt params differ only in:", {s: {k for k in set(pa[s]) | set(pb[s]) if pa[s].get(k) != pb[s].get(k)} for s in pa if pa[s] != pb[s]})
print("train.json equal:", open(f"{o}/metrics/train.json").read() == open(f"{n}/metrics/train.json").read())
for f in sorted(glob.glob(f"{o}/plots/train/plots/metrics/**/*.tsv", recursive=True)):
    g = f.replace(o, n); name = os.path.relpath(f, f"{o}/plots/train/plots/metrics")
    if "tokens_per_s" in name: continue
    print("curve", name, "equal:", open(f).read() == open(g).read())
