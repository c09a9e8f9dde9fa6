import numpy as np
import pytest

from s2s.distributed import World, shard_rows
from s2s.errors import S2SError


def test_without_torchrun_this_is_the_one_process():
    world = World.from_env({})
    assert (world.rank, world.local_rank, world.size, world.is_main) == (0, 0, 1, True)


def test_torchruns_environment_names_the_process():
    world = World.from_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"})
    assert (world.rank, world.local_rank, world.size, world.is_main) == (3, 1, 4, False)


@pytest.mark.parametrize("env, message", [
    ({"RANK": "1"}, "sets RANK but not LOCAL_RANK, WORLD_SIZE; start the processes with torchrun"),
    ({"RANK": "a", "LOCAL_RANK": "0", "WORLD_SIZE": "2"}, "must be whole numbers, got RANK='a'"),
    ({"RANK": "2", "LOCAL_RANK": "0", "WORLD_SIZE": "2"}, "RANK=2, LOCAL_RANK=0, WORLD_SIZE=2 do not describe"),
])
def test_an_inconsistent_environment_is_one_clear_error(env, message):
    with pytest.raises(S2SError, match=message):
        World.from_env(env)


@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
def test_shards_cover_every_row_once_balanced_by_tokens(world_size):
    rng = np.random.default_rng(world_size)
    lengths = rng.integers(1, 40, size=57)
    shards = shard_rows(lengths, world_size)
    assert len(shards) == world_size
    assert sorted(np.concatenate(shards).tolist()) == list(range(57))
    assert all((np.diff(shard) > 0).all() for shard in shards)  # each in the batch's order
    tokens = [int(lengths[shard].sum()) for shard in shards]
    assert max(tokens) - min(tokens) <= lengths.max()
    assert [s.tolist() for s in shard_rows(lengths, world_size)] == [s.tolist() for s in shards]  # deterministic


def test_one_process_keeps_the_batch_and_few_rows_leave_ranks_empty():
    assert shard_rows(np.array([5, 3, 9]), 1)[0].tolist() == [0, 1, 2]
    assert [s.tolist() for s in shard_rows(np.array([5, 9]), 4)] == [[1], [0], [], []]
    with pytest.raises(ValueError, match="at least 1"):
        shard_rows(np.array([1]), 0)
