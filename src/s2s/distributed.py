"""Data parallelism's bookkeeping: which process this is, its share of each update's batch, and
the few collectives training needs (sums, the writer's decisions, the ranks' RNG states).

Under ``torchrun`` every process runs the same training loop and builds the same global batches
(the same seed, the same data); :func:`shard_rows` gives each rank its rows of a batch,
deterministically and balanced by target tokens, so that the ranks finish their forward and
backward passes at about the same time. Each rank's loss is normalised by the batch's *global*
target tokens, so the gradients summed over ranks are the single-process gradient of the whole
batch.

One process is the *writer*: it alone validates, writes checkpoints, the model and metrics, and
shares its decisions. It is the lowest rank on the node whose launcher runs the stage for DVC
(``S2S_OUTPUT_NODE=1`` in its environment), else rank 0. With one process every collective
here is the identity and nothing of ``torch.distributed`` is touched.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import numpy as np
import torch

from s2s.errors import S2SError

OUTPUT_NODE_ENV = "S2S_OUTPUT_NODE"  # set by the stage's own launcher: its node writes the outputs
# How long a rank waits for the others at a collective: the writer validates (decodes) alone meanwhile.
COLLECTIVE_TIMEOUT = datetime.timedelta(hours=2)


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (torchrun's ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``)."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1
    local_size: int = 1  # processes on this node (torchrun's LOCAL_WORLD_SIZE)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "World":
        """The world torchrun describes in ``env``; one process (rank 0 of 1) when it describes none."""
        names = ("RANK", "LOCAL_RANK", "WORLD_SIZE")
        given = {name: env[name] for name in names if name in env}
        if not given:
            return cls()
        if len(given) < len(names):
            missing = ", ".join(name for name in names if name not in given)
            raise S2SError(f"the environment sets {', '.join(given)} but not {missing}; start the processes with "
                           "torchrun, which sets all three, or unset them for one process")
        try:
            rank, local_rank, size = (int(given[name]) for name in names)
            local_size = int(env.get("LOCAL_WORLD_SIZE", size))
        except ValueError:
            raise S2SError(f"RANK, LOCAL_RANK, WORLD_SIZE (and LOCAL_WORLD_SIZE) must be whole numbers, got "
                           f"{', '.join(f'{n}={given[n]!r}' for n in names)}") from None
        if size < 1 or not 0 <= rank < size or not 0 <= local_rank <= rank:
            raise S2SError(f"RANK={rank}, LOCAL_RANK={local_rank}, WORLD_SIZE={size} do not describe a process "
                           "of the world (0 <= LOCAL_RANK <= RANK < WORLD_SIZE); start the processes with torchrun")
        return cls(rank, local_rank, size, local_size)


def shard_rows(tgt_lengths: np.ndarray, world_size: int) -> list[np.ndarray]:
    """Each rank's rows of one batch, balanced by target tokens.

    ``tgt_lengths`` (rows,) -> ``world_size`` arrays of row positions, each in increasing order,
    together every row exactly once. Rows go longest first, each to the rank with the fewest
    tokens so far (the lowest such rank), so the ranks' token counts differ by at most the
    longest row. A batch of fewer rows than ranks leaves some ranks none.
    """
    if world_size < 1:
        raise ValueError(f"world size {world_size}: must be at least 1")
    lengths = np.asarray(tgt_lengths, dtype=np.int64)
    if world_size == 1:
        return [np.arange(len(lengths))]
    tokens = np.zeros(world_size, dtype=np.int64)
    owner = np.empty(len(lengths), dtype=np.int64)
    for row in np.argsort(-lengths, kind="stable"):  # longest first; equal lengths in batch order
        rank = int(np.argmin(tokens))                # the first of the least loaded
        owner[row] = rank
        tokens[rank] += lengths[row]
    return [np.flatnonzero(owner == rank) for rank in range(world_size)]


def rank_rows(indices: np.ndarray, tgt_lengths: np.ndarray, world: World) -> np.ndarray:
    """This rank's sentences of a batch: ``indices`` (rows,) the batch's sentence indices and
    ``tgt_lengths`` (rows,) their target lengths -> the indices of its :func:`shard_rows` share."""
    return np.asarray(indices)[shard_rows(tgt_lengths, world.size)[world.rank]]


def loss_divisor(global_tgt_tokens: int, world: World) -> float:
    """What a rank divides its summed token losses by before ``backward``: DDP averages the
    ranks' gradients, so ``global tokens / world.size`` makes the average the gradient of the
    whole batch's loss per target token, as one process computes it (there: the tokens, exactly)."""
    if global_tgt_tokens < 1:
        raise ValueError(f"{global_tgt_tokens} target tokens: a batch has at least one")
    return global_tgt_tokens if world.size == 1 else global_tgt_tokens / world.size


def threads_per_process(threads: int, world: World) -> int:
    """``train.threads`` for one process: as given, or 0 = this node's cores shared by its processes."""
    return threads or max(1, (os.cpu_count() or 1) // world.local_size)


class Ranks:
    """The training processes, seen from one of them: the collectives training needs.

    With one process (``world.size == 1``) every method returns its argument.
    """

    def __init__(self, world: World = World(), writer: int = 0, device: torch.device = torch.device("cpu")):
        self.world, self.writer, self.device = world, writer, device

    @property
    def is_writer(self) -> bool:
        """The one process that validates and writes checkpoints, the model and metrics."""
        return self.world.rank == self.writer

    def sum(self, values: Sequence[float]) -> list[float]:
        """``values`` summed element-wise over the ranks (float64), the same list on every rank."""
        if self.world.size == 1:
            return list(values)
        import torch.distributed as dist
        total = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return total.tolist()

    def first_signal(self, caught: Optional[int]) -> Optional[int]:
        """A stop signal any rank caught (the largest number), or None: every rank stops at the same update."""
        if self.world.size == 1:
            return caught
        import torch.distributed as dist
        flag = torch.tensor([caught or 0], dtype=torch.int64, device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item()) or None

    def share(self, obj: Any) -> Any:
        """The writer's ``obj`` on every rank (pickled; the others pass anything, e.g. None)."""
        if self.world.size == 1:
            return obj
        import torch.distributed as dist
        box = [obj if self.is_writer else None]
        dist.broadcast_object_list(box, src=self.writer, device=self.device)
        return box[0]

    def on_writer(self, action: Callable[[], Any]) -> Any:
        """``action()`` run by the writer alone, its result on every rank; when it raises, every rank
        raises (the writer its own error, the others one naming it), so none waits for ever."""
        if self.world.size == 1:
            return action()
        outcome = None
        if self.is_writer:
            try:
                outcome = ("done", action())
            except Exception as err:  # noqa: BLE001 - re-raised below, on every rank
                outcome, failure = ("failed", str(err)), err
        kind, value = self.share(outcome)
        if kind == "failed":
            if self.is_writer:
                raise failure
            raise S2SError(f"the writer (rank {self.writer}) stopped: {value}")
        return value

    def agree(self, mine: Any, what: str) -> None:
        """Raise on every rank unless every rank's ``mine`` equals the writer's (``what`` names it)."""
        if self.world.size == 1:
            return
        differs = self.share(mine) != mine
        if self.sum([float(differs)])[0]:
            raise S2SError(f"the training processes disagree on {what}: every node must run the same commit "
                           "with the same params.yaml and data (dvc pull, or a shared file system)")

    def gather(self, obj: Any) -> Optional[list]:
        """Every rank's ``obj`` in rank order at the writer; None on the other ranks."""
        if self.world.size == 1:
            return [obj]
        import torch.distributed as dist
        out = [None] * self.world.size if self.is_writer else None
        dist.gather_object(obj, out, dst=self.writer)
        return out

    def wait(self) -> None:
        """Return when every rank got here (e.g. the writer's checkpoint is on disk before all stop)."""
        if self.world.size > 1:
            import torch.distributed as dist
            dist.barrier()


@contextlib.contextmanager
def joined(world: World, device: torch.device, env: Mapping[str, str] = os.environ) -> Iterator[Ranks]:
    """Join the other training processes (NCCL on CUDA, gloo on the CPU) for the block; choose the writer.

    One process joins nothing. The rendezvous comes from torchrun's environment (``MASTER_ADDR``,
    ``MASTER_PORT``).
    """
    if world.size == 1:
        yield Ranks(world, 0, device)
        return
    import torch.distributed as dist
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=world.rank, world_size=world.size,
                            timeout=COLLECTIVE_TIMEOUT)
    try:
        on_output_node = env.get(OUTPUT_NODE_ENV) == "1"
        lowest = torch.tensor([world.rank if on_output_node else world.size], device=device)
        dist.all_reduce(lowest, op=dist.ReduceOp.MIN)
        writer = int(lowest.item())
        yield Ranks(world, writer if writer < world.size else 0, device)
    finally:
        dist.destroy_process_group()
