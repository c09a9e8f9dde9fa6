"""Usage: PYTHONPATH=src python benchmarks/scale/data_memory.py SMALL_PROJECT [BIG_PROJECT]

Peak RSS of 35 training updates on the 29k project's batches, with or without the 2.9M split
loaded and its epoch's batches built (and kept) in the same process: the difference is what the
data costs, with the training shapes held equal."""
import resource, sys
from pathlib import Path
import torch
from s2s.config import load_params
from s2s.device import set_threads
from s2s.optim import build_optimizer
from s2s.subword import Vocabs
from s2s.tensors import ParallelData
from s2s.train import build_model, epoch_updates, optimizer_step, update_batches
small, big = Path(sys.argv[1]), (Path(sys.argv[2]) if len(sys.argv) > 2 else None)
p = load_params(small / 'params.yaml'); set_threads(p.train.threads)
kept = None
if big is not None:
    data_big = ParallelData.load(big / 'data/tensors/train')
    kept = (data_big, epoch_updates(data_big, load_params(big / 'params.yaml').train, 1))
d = ParallelData.load(small / 'data/tensors/train'); v = Vocabs.load(small / 'data/spm')
torch.manual_seed(0)
m = build_model(p.model, v).train(); o = build_optimizer(m, p.train.lr)
for g in epoch_updates(d, p.train, 1)[:35]:
    optimizer_step(m, o, update_batches(d, g), p.train, torch.device('cpu'), None)
print('with' if big else 'without', big or '', 'peak RSS MiB', round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
