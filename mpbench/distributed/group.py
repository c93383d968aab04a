"""This process's place in a torchrun launch: ranks, the store, the process group.

The key-value store is torchrun's own (the agent's TCPStore, which outlives the workers
and their restarts), so ranks can still tell each other what went wrong when the process
group is broken, and a restarted group can read what the previous attempt left.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

from mpbench.config.parallel import ParallelConfig
from mpbench.errors import UserError


@dataclass(frozen=True)
class TorchrunEnv:
    """The variables torchrun gives each worker."""

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    master_addr: str
    master_port: int
    restart_count: int
    max_restarts: int
    run_id: str
    agent_store: bool
    node_rank: int = 0
    """torchrun's GROUP_RANK: which agent (node) started this process."""

    @staticmethod
    def detect(environ: dict[str, str] | None = None) -> TorchrunEnv | None:
        """None when this process was not started by torchrun."""
        env = os.environ if environ is None else environ
        if "RANK" not in env or "WORLD_SIZE" not in env or "MASTER_ADDR" not in env:
            return None
        world = int(env["WORLD_SIZE"])
        return TorchrunEnv(
            rank=int(env["RANK"]), local_rank=int(env.get("LOCAL_RANK", env["RANK"])),
            world_size=world, local_world_size=int(env.get("LOCAL_WORLD_SIZE", world)),
            master_addr=env["MASTER_ADDR"], master_port=int(env.get("MASTER_PORT", "29500")),
            restart_count=int(env.get("TORCHELASTIC_RESTART_COUNT", "0")),
            max_restarts=int(env.get("TORCHELASTIC_MAX_RESTARTS", "0")),
            run_id=env.get("TORCHELASTIC_RUN_ID", "none"),
            agent_store=env.get("TORCHELASTIC_USE_AGENT_STORE", "False") == "True",
            node_rank=int(env.get("GROUP_RANK", "0")),
        )

    @property
    def nodes(self) -> int:
        return max(1, self.world_size // max(1, self.local_world_size))


def rank_device(kind: str, env: TorchrunEnv) -> torch.device:
    """cuda:LOCAL_RANK on GPUs (one GPU per process), else the CPU."""
    if kind != "cuda":
        return torch.device("cpu")
    visible = torch.cuda.device_count()
    if env.local_world_size > visible:
        raise UserError(f"torchrun started {env.local_world_size} processes on this node but "
                        f"{visible} CUDA device(s) are visible; lower --nproc-per-node")
    torch.cuda.set_device(env.local_rank)
    return torch.device("cuda", env.local_rank)


def resolve_backend(choice: str, device: torch.device) -> str:
    if choice == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if choice == "nccl" and device.type != "cuda":
        raise UserError("parallel.backend: nccl needs CUDA GPUs; use gloo (or auto) on a CPU")
    return choice


@dataclass
class RankGroup:
    """The process group of one torchrun attempt, with its store and SIGTERM deferral."""

    env: TorchrunEnv
    device: torch.device
    backend: str
    store: dist.Store
    timeout_s: float
    term_requested: list[float] = field(default_factory=list)
    _second: dist.Store | None = None
    _previous_term: Any = None

    @property
    def rank(self) -> int:
        return self.env.rank

    @property
    def world_size(self) -> int:
        return self.env.world_size

    def key(self, *parts: Any, attempt: int | None = None) -> str:
        """Store keys, per attempt, so a restarted group never reads stale answers."""
        n = self.env.restart_count if attempt is None else attempt
        return "/".join(["mpbench", f"a{n}", *map(str, parts)])

    def second_store(self) -> dist.Store:
        """Another client of the same store, for the fault-watch thread."""
        if self._second is None:
            self._second = open_store(self.env, self.timeout_s)
        return self._second

    def destroy(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()
        if self._previous_term is not None:
            signal.signal(signal.SIGTERM, self._previous_term)
            self._previous_term = None


def open_store(env: TorchrunEnv, timeout_s: float) -> dist.Store:
    timeout = timedelta(seconds=timeout_s)
    if env.agent_store:  # torchrun's agent hosts it; it survives worker restarts
        return dist.TCPStore(env.master_addr, env.master_port, is_master=False, timeout=timeout)
    return dist.TCPStore(env.master_addr, env.master_port, env.world_size,
                         is_master=env.rank == 0, timeout=timeout)


def init_group(env: TorchrunEnv, device: torch.device, parallel: ParallelConfig) -> RankGroup:
    """Open the store and the process group (NCCL on GPUs, gloo on CPUs) with the timeout."""
    backend = resolve_backend(parallel.backend, device)
    store = open_store(env, parallel.timeout_s)
    group = RankGroup(env, device, backend, store, parallel.timeout_s)
    dist.init_process_group(
        backend, store=dist.PrefixStore(f"mpbench-pg/{env.restart_count}", store),
        rank=env.rank, world_size=env.world_size,
        timeout=timedelta(seconds=parallel.timeout_s),
        device_id=device if device.type == "cuda" else None,
    )
    # torchrun stops every worker with SIGTERM when one of them dies. A survivor that is
    # still writing the failed record must finish it; the agent waits 30 s before SIGKILL.
    group._previous_term = signal.signal(
        signal.SIGTERM, lambda signum, frame: group.term_requested.append(1.0))
    return group
