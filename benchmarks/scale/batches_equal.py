"""Every batch of the int32-length code equals the int64 one's: token_batches of epochs 1..E on a
tensorized project, plain, pooled, 2 buckets per batch, and in decoding order.

    git show dd53509:src/s2s/tensors.py > /tmp/tensors_old.py
    python benchmarks/scale/batches_equal.py . 35 /tmp/tensors_old.py
"""
import importlib.util, sys
from pathlib import Path
import numpy as np
sys.path.insert(0, "src")
from s2s.config import load_params
from s2s import tensors as new
spec = importlib.util.spec_from_file_location("tensors_old", sys.argv[3])
old = importlib.util.module_from_spec(spec); spec.loader.exec_module(old)
root = Path(sys.argv[1]); epochs = int(sys.argv[2])  # argv[3]: the old tensors.py (git show REV:src/s2s/tensors.py)
p = load_params(root / "params.yaml").train
dn, do = new.ParallelData.load(root / "data/tensors/train"), old.ParallelData.load(root / "data/tensors/train")
assert dn.src_lens.dtype == np.int32 and np.array_equal(dn.src_lens, do.src_lens) and np.array_equal(dn.tgt_lens, do.tgt_lens)
for e in range(1, epochs + 1):
    for kw in ({}, {"pool": 4}, {"buckets_per_batch": 2}):
        a = new.token_batches(dn.src_lens, dn.tgt_lens, p.batch_tokens, np.random.default_rng([p.seed, e]), **kw)
        b = old.token_batches(do.src_lens, do.tgt_lens, p.batch_tokens, np.random.default_rng([p.seed, e]), **kw)
        assert len(a) == len(b) and all(x.dtype == np.int32 and np.array_equal(x, y) for x, y in zip(a, b)), (e, kw)
a = new.token_batches(dn.src_lens, dn.tgt_lens, p.batch_tokens); b = old.token_batches(do.src_lens, do.tgt_lens, p.batch_tokens)
assert all(np.array_equal(x, y) for x, y in zip(a, b)) and len(a) == len(b)
print(root, f"epochs 1-{epochs}: every batch equal (plain, pool 4, 2 buckets per batch, and decoding order); lengths int32 equal")
