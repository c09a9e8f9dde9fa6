import numpy as np
import pytest

from s2s.distributed import World, loss_divisor, rank_rows, shard_rows
from s2s.errors import S2SError


def test_without_torchrun_this_is_the_one_process():
    world = World.from_env({})
    assert (world.rank, world.local_rank, world.size, world.local_size) == (0, 0, 1, 1)


def test_torchruns_environment_names_the_process():
    world = World.from_env({"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"})
    assert (world.rank, world.local_rank, world.size, world.local_size) == (3, 1, 4, 4)


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
        (losses.sum() / loss_divisor(int(tgt_lens.sum()), world)).backward()
        if rank == 0:
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


def _writer_of(rank: int, size: int, port: int, flagged: list, out: str) -> None:
    """One gloo rank joins through :func:`joined`; each saves the writer it was told."""
    import os

    import torch

    from s2s.distributed import OUTPUT_NODE_ENV, joined

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    env = {OUTPUT_NODE_ENV: "1"} if rank in flagged else {}
    with joined(World(rank, rank, size, size), torch.device("cpu"), env) as ranks:
        total = ranks.sum([rank, 1.0])
        shared = ranks.share({"from": ranks.world.rank})
        gathered = ranks.gather(rank * 10)
        signal = ranks.first_signal(15 if rank == size - 1 else None)
    torch.save({"writer": ranks.writer, "sum": total, "shared": shared, "gathered": gathered, "signal": signal},
               f"{out}.{rank}")


@pytest.mark.parametrize("flagged, writer", [([], 0), ([1, 2], 1)])
def test_the_writer_is_the_lowest_rank_of_the_output_node_and_decisions_are_shared(tmp_path, flagged, writer):
    import socket

    import torch
    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.start_processes(_writer_of, args=(3, port, flagged, str(tmp_path / "out")), nprocs=3, start_method="spawn")
    for rank in range(3):
        seen = torch.load(f"{tmp_path / 'out'}.{rank}")
        assert seen["writer"] == writer
        assert seen["sum"] == [3.0, 3.0]
        assert seen["shared"] == {"from": writer}  # the writer's object, on every rank
        assert seen["gathered"] == ([0, 10, 20] if rank == writer else None)
        assert seen["signal"] == 15  # one rank's signal stops them all


def test_one_process_joins_nothing_and_every_collective_is_the_identity():
    import torch

    from s2s.distributed import Ranks, joined

    with joined(World(), torch.device("cpu"), {}) as ranks:
        assert ranks.is_writer and ranks.sum([2.5]) == [2.5] and ranks.share("x") == "x"
        assert ranks.gather(7) == [7] and ranks.first_signal(None) is None
    assert Ranks().world.size == 1


def test_the_loss_divisor_of_one_process_is_the_token_count_itself():
    assert loss_divisor(37, World()) == 37 and isinstance(loss_divisor(37, World()), int)
    assert loss_divisor(37, World(0, 0, 2, 2)) == 18.5
    with pytest.raises(ValueError, match="at least one"):
        loss_divisor(0, World())


def _failing_writer(rank: int, port: int, out: str) -> None:
    """Two gloo ranks: the writer's action fails, then the ranks' params differ; each records what it raised."""
    import os

    import torch

    from s2s.distributed import joined

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    raised = []
    with joined(World(rank, rank, 2, 2), torch.device("cpu"), {}) as ranks:
        def fails():
            raise S2SError("models/last.pt: no space left on the device")
        for action in (fails, lambda: ranks.agree(("key", 500 + rank), "the params")):
            try:
                ranks.on_writer(action) if action is fails else action()
            except S2SError as err:
                raised.append(str(err))
        raised.append(ranks.on_writer(lambda: "the writer's value"))
    torch.save(raised, f"{out}.{rank}")


def test_a_failure_of_the_writer_or_a_disagreement_stops_every_rank_with_a_message(tmp_path):
    import socket

    import torch
    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.start_processes(_failing_writer, args=(port, str(tmp_path / "out")), nprocs=2, start_method="spawn")
    writer, other = (torch.load(f"{tmp_path / 'out'}.{rank}") for rank in (0, 1))
    assert writer[0] == "models/last.pt: no space left on the device"
    assert other[0] == "the writer (rank 0) stopped: models/last.pt: no space left on the device"
    for raised in (writer, other):  # nobody waits for ever: both know, both stop
        assert raised[1].startswith("the training processes disagree on the params: every node must run")
        assert raised[2] == "the writer's value"
