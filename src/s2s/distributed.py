"""Data parallelism's bookkeeping: which process this is, and its share of each update's batch.

Under ``torchrun`` every process runs the same training loop and builds the same global batches
(the same seed, the same data); :func:`shard_rows` gives each rank its rows of a batch,
deterministically and balanced by target tokens, so that the ranks finish their forward and
backward passes at about the same time. Each rank's loss is normalised by the batch's *global*
target tokens, so the gradients summed over ranks are the single-process gradient of the whole
batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from s2s.errors import S2SError


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (torchrun's ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``)."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, the model and metrics."""
        return self.rank == 0

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
        except ValueError:
            raise S2SError(f"RANK, LOCAL_RANK and WORLD_SIZE must be whole numbers, got "
                           f"{', '.join(f'{n}={given[n]!r}' for n in names)}") from None
        if size < 1 or not 0 <= rank < size or not 0 <= local_rank <= rank:
            raise S2SError(f"RANK={rank}, LOCAL_RANK={local_rank}, WORLD_SIZE={size} do not describe a process "
                           "of the world (0 <= LOCAL_RANK <= RANK < WORLD_SIZE); start the processes with torchrun")
        return cls(rank, local_rank, size)


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


def loss_scale(global_tgt_tokens: int, world: World) -> float:
    """What a rank multiplies its summed token losses by before ``backward``: DDP averages the
    ranks' gradients, so ``world.size / global tokens`` makes the average the gradient of the
    whole batch's loss per target token, as one process computes it."""
    if global_tgt_tokens < 1:
        raise ValueError(f"{global_tgt_tokens} target tokens: a batch has at least one")
    return world.size / global_tgt_tokens
