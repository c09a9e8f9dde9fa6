"""Starting a node's training processes with torch's elastic launcher, the engine of ``torchrun``.

The train stage calls it when ``train.nproc`` > 1: the stage's own process becomes the node's
agent, starts ``nproc`` copies of the stage script with torchrun's environment (``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...) and waits for them. If one fails, the agent
stops the others. Its workers carry ``S2S_OUTPUT_NODE=1``: this node, the one DVC runs on,
writes the outputs.

One node needs nothing more (a rendezvous on a free local port, as ``torchrun --standalone``).
Several nodes meet at a c10d rendezvous named by the environment of the DVC node's stage:
``S2S_NNODES`` (nodes in all), ``S2S_RDZV_ENDPOINT`` (``host:port`` the others can reach) and
``S2S_RDZV_ID`` (the job's name); every other node runs ``torchrun`` with the same values.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from s2s.distributed import OUTPUT_NODE_ENV
from s2s.errors import S2SError
from s2s.signals import TrainingInterrupted

log = logging.getLogger(__name__)
# After forwarding SIGINT/SIGTERM, how long the workers have to finish their update, a validation
# under way and the checkpoint before they are killed.
SHUTDOWN_SECONDS = 900


@dataclass(frozen=True)
class Rendezvous:
    """Where the nodes of one training meet (c10d, torch's own TCP store)."""

    nodes: int = 1
    endpoint: str = "localhost:0"  # port 0: a free one (one node only)
    run_id: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Rendezvous":
        """``S2S_NNODES``, ``S2S_RDZV_ENDPOINT``, ``S2S_RDZV_ID``; one node on this machine when unset."""
        raw = env.get("S2S_NNODES", "1")
        if not raw.isdigit() or int(raw) < 1:
            raise S2SError(f"S2S_NNODES={raw!r}: the number of nodes must be a whole number >= 1")
        nodes = int(raw)
        if nodes == 1:
            return cls(run_id=uuid.uuid4().hex)
        endpoint, run_id = env.get("S2S_RDZV_ENDPOINT", ""), env.get("S2S_RDZV_ID", "")
        if not endpoint or not run_id:
            raise S2SError(f"S2S_NNODES={nodes} needs S2S_RDZV_ENDPOINT (host:port of this node, reachable by "
                           "the others) and S2S_RDZV_ID (the job's name): the other nodes run torchrun with "
                           "--rdzv-endpoint and --rdzv-id set to the same values")
        return cls(nodes, endpoint, run_id)


def launch_workers(script: Path, nproc: int, rendezvous: Rendezvous) -> None:
    """Run ``python script`` as ``nproc`` processes of this node and wait until all have finished.

    A worker that fails (its own ``error:`` line says why) stops the others and raises
    :class:`S2SError`; a SIGINT/SIGTERM to this process reaches every worker, which save the
    resume checkpoint and stop, and raises :class:`TrainingInterrupted`.
    """
    log.info("starting %d training processes on this node (%d node(s) in all)", nproc, rendezvous.nodes)
    run_on_node(sys.executable, [str(script)], nproc, rendezvous)


def run_on_node(entrypoint: Callable[..., Any] | str, args: Sequence[Any], nproc: int,
                rendezvous: Rendezvous) -> dict[int, Any]:
    """``entrypoint(*args)`` in ``nproc`` worker processes with torchrun's environment; their return
    values by local rank (a program, ``entrypoint`` as a path: nothing). See :func:`launch_workers`."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs

    logging.getLogger("torch.distributed.elastic").setLevel(logging.ERROR)
    previous = os.environ.get(OUTPUT_NODE_ENV)
    os.environ[OUTPUT_NODE_ENV] = "1"  # the workers inherit the agent's environment
    try:
        with tempfile.TemporaryDirectory(prefix="s2s-launch-") as logs:  # the agent's error files, then gone
            config = LaunchConfig(min_nodes=rendezvous.nodes, max_nodes=rendezvous.nodes, nproc_per_node=nproc,
                                  run_id=rendezvous.run_id, rdzv_backend="c10d", rdzv_endpoint=rendezvous.endpoint,
                                  max_restarts=0, monitor_interval=0.1, logs_specs=DefaultLogsSpecs(log_dir=logs),
                                  shutdown_timeout=SHUTDOWN_SECONDS)
            return elastic_launch(config, entrypoint)(*args) or {}
    except ChildFailedError as failed:
        rank, failure = failed.get_first_failure()
        raise S2SError(f"training process rank {rank} exited with code {failure.exitcode}, and the others "
                       "were stopped; its own error, above, says what happened and what to do") from None
    except SignalException as signalled:
        raise TrainingInterrupted(f"stopped by signal {int(signalled.sigval)}; the training processes stopped "
                                  "at the same update, after saving models/last.pt: run the stage again to "
                                  "resume") from None
    finally:
        if previous is None:
            os.environ.pop(OUTPUT_NODE_ENV, None)
        else:
            os.environ[OUTPUT_NODE_ENV] = previous
