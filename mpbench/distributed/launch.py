"""Start torchrun (torch.distributed.run) for the user, and the checks made before it.

mpbench never manages processes itself: `--nproc N` runs
  python -m torch.distributed.run --standalone --nproc-per-node N --max-restarts R -m mpbench ...
with R = the number of runs, so a failed run (which ends its attempt) lets the suite go on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mpbench.config.parallel import batch_problem
from mpbench.config.schema import Suite
from mpbench.errors import UserError

LAUNCHED_ENV = "MPBENCH_LAUNCHED_BY"
"""Set in the workers that `mpbench ... --nproc` started: the parent prints the summary."""


def needs_parallel(suite: Suite, how: str) -> None:
    if suite.parallel is None:
        raise UserError(f"{how}: suite '{suite.name}' has no parallel: section; add one, "
                        "e.g. `parallel: {strategy: ddp}`, or run it without --nproc/torchrun")


def check_world(suite: Suite, world_size: int, per_node: int, device_kind: str, how: str) -> None:
    """Bad launches fail here, before any process trains (exit code 2)."""
    assert suite.parallel is not None
    wanted = suite.parallel.world_size
    if wanted is not None and wanted != world_size:
        raise UserError(f"{how}: starts {world_size} processes but the suite sets "
                        f"parallel.world_size {wanted}; make them agree (or drop world_size)")
    problem = batch_problem(suite.train.batch_size, world_size)
    if problem:
        raise UserError(f"train.batch_size (the global batch): {problem}")
    if device_kind == "cuda":
        visible = torch.cuda.device_count()
        if per_node > visible:
            raise UserError(f"{how}: {per_node} processes per node but {visible} CUDA device(s) "
                            "are visible; one process drives one GPU, so lower it")
    elif suite.parallel.backend == "nccl":
        raise UserError("parallel.backend: nccl needs CUDA GPUs; use gloo (or auto) on a CPU")


def with_world_size(suite: Suite, world_size: int) -> Suite:
    """The suite with the launch's world size filled in (it appears in the run ids)."""
    assert suite.parallel is not None
    return suite.model_copy(update={"parallel": suite.parallel.with_world_size(world_size)})


def torchrun_command(nproc: int, max_restarts: int, module_args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={nproc}", f"--max-restarts={max_restarts}",
            "-m", "mpbench", *module_args]


def launch(nproc: int, max_restarts: int, module_args: Sequence[str]) -> int:
    """Run torchrun in the foreground; its exit code. Ctrl-C waits for the workers to stop."""
    env = dict(os.environ)
    env[LAUNCHED_ENV] = str(os.getpid())
    # torchrun would set 1 and warn; share the cores out instead (CPU runs use them).
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    proc = subprocess.Popen(torchrun_command(nproc, max_restarts, module_args), env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.wait()
        raise


def launched_by_parent() -> bool:
    return LAUNCHED_ENV in os.environ


RDZV_TIMEOUT_MARK = "RendezvousTimeoutError"


@dataclass
class AgentEnd:
    code: int
    rdzv_timed_out: bool = False
    error: str | None = None
    """The first `error: ...` line a rank printed (a user error: exit code 2 on every rank)."""


def run_agent(command: Sequence[str]) -> AgentEnd:
    """Run this node's torchrun agent in the foreground. Its output passes through as it
    comes, but for a traceback ending in torchrun's RendezvousTimeoutError and a rank's
    `error:` line (every restarted attempt says it again), so the caller can end with the
    one line that says what happened."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.Popen(list(command), env=env, stderr=subprocess.PIPE, text=True,
                            errors="replace")
    assert proc.stderr is not None
    end = AgentEnd(0)
    held: list[str] = []  # a traceback, held back until we know whether it is the timeout's
    try:
        for line in proc.stderr:
            end.rdzv_timed_out = end.rdzv_timed_out or RDZV_TIMEOUT_MARK in line
            if line.startswith("error: "):  # the caller ends with it, once
                end.error = end.error or line.removeprefix("error: ").strip()
                continue
            if line.startswith("Traceback") or held:
                held.append(line)
                if len(held) < 400:
                    continue
            sys.stderr.writelines(held or [line])
            held = []
        end.code = proc.wait()
        if not end.rdzv_timed_out and not (end.code and end.error):  # else: torchrun's own
            sys.stderr.writelines(held)  # traceback of what the caller's one line says
        if end.code == 0 and end.error:
            sys.stderr.write(f"error: {end.error}\n")
        return end
    except KeyboardInterrupt:
        proc.wait()
        raise
