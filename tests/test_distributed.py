import numpy as np
import pytest

from s2s.distributed import World, loss_scale, rank_rows, shard_rows
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


def _rank_gradients(rank: int, size: int, port: int, out: str) -> None:
    """One gloo rank: its share of the batch through DDP; rank 0 saves the all-reduced gradients."""
    import os

    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=size)
    try:
        world = World(rank, rank, size)
        model, src, src_lens, tgt_in, tgt_out = _model_and_batch()
        ddp = DistributedDataParallel(model)
        tgt_lens = (tgt_out != 0).sum(1).numpy()
        rows = torch.from_numpy(rank_rows(np.arange(len(tgt_lens)), tgt_lens, world))
        losses = ddp(src[rows], src_lens[rows], tgt_in[rows], tgt_out[rows])  # (rows', tgt_len)
        (losses.sum() * loss_scale(int(tgt_lens.sum()), world)).backward()
        if world.is_main:
            torch.save({n: p.grad for n, p in model.named_parameters()}, out)
    finally:
        dist.destroy_process_group()


def _model_and_batch():
    import torch

    from s2s.config import ModelConfig
    from s2s.model import Seq2Seq

    class Losses(Seq2Seq):  # DDP runs forward: here the token losses, label smoothing 0.1
        def forward(self, src, src_lens, tgt_in, tgt_out):
            return self.token_losses(src, src_lens, tgt_in, tgt_out, 0.1)

    torch.manual_seed(0)
    model = Losses(ModelConfig(emb=16, hidden=24, dropout=0.0), 40, 40)
    generator = torch.Generator().manual_seed(1)
    src_lens = torch.randint(2, 9, (7,), generator=generator)
    tgt_lens = torch.randint(2, 11, (7,), generator=generator)
    src = torch.randint(4, 40, (7, int(src_lens.max())), generator=generator)
    src = src.masked_fill(torch.arange(src.size(1)) >= src_lens[:, None], 0)
    tgt = torch.randint(4, 40, (7, int(tgt_lens.max()) + 1), generator=generator)
    tgt_in = tgt[:, :-1].masked_fill(torch.arange(tgt.size(1) - 1) >= tgt_lens[:, None], 0)
    tgt_out = tgt[:, 1:].masked_fill(torch.arange(tgt.size(1) - 1) >= tgt_lens[:, None], 0)
    return model, src, src_lens, tgt_in, tgt_out


@pytest.mark.parametrize("size", [2, 3])
def test_ranks_shares_of_a_batch_give_the_single_process_gradient(tmp_path, size):
    import socket

    import torch
    import torch.multiprocessing as mp

    model, src, src_lens, tgt_in, tgt_out = _model_and_batch()
    n_tokens = int((tgt_out != 0).sum())
    (model(src, src_lens, tgt_in, tgt_out).sum() / n_tokens).backward()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.start_processes(_rank_gradients, args=(size, port, str(tmp_path / "grads.pt")), nprocs=size,
                       start_method="spawn")
    grads = torch.load(tmp_path / "grads.pt")
    for name, parameter in model.named_parameters():
        assert torch.allclose(grads[name], parameter.grad, rtol=1e-5, atol=1e-7), name
