"""Start torchrun (torch.distributed.run): for the user on one node, or as what a multi-node
launch runs on every node; and the checks made before either.

One node: mpbench never manages processes itself: `--nproc N` runs
  python -m torch.distributed.run --standalone --nproc-per-node N --max-restarts R -m mpbench ...
with R = the number of runs, so a failed run (which ends its attempt) lets the suite go on.

Several nodes: one torchrun agent per node runs our suite. The schedulers' job files
(schedulers.py: Slurm, Kubernetes) and `mpbench launch torchrun` all write the same torchrun
command, built here (LaunchPlan). mpbench manages no processes: torchrun starts the ranks and
restarts them (a failed run ends its attempt, see runner.py), Slurm or the Kubeflow operator
starts torchrun on every node.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import torch

from mpbench.config.parallel import batch_problem
from mpbench.config.schema import Suite
from mpbench.errors import UserError
from mpbench.results.output import check_writable_dir

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


# -- multi-node: what a launch runs on every node --------------------------------------------

DEFAULT_RDZV_PORT = 29500
DEFAULT_RDZV_TIMEOUT_S = 600
"""torchrun's own default join timeout for the c10d rendezvous."""


def suite_sha256(text: str | bytes) -> str:
    """The hash every node compares: the suite file as read, byte for byte."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class LaunchPlan:
    """One suite on `nodes` x `procs_per_node` processes, results in one shared directory."""

    suite: Suite
    nodes: int
    procs_per_node: int
    device: str
    """cuda (one process per GPU) or cpu."""
    results: str
    """The results directory as the nodes see it (a path on the cluster's shared storage)."""
    run_args: tuple[str, ...] = field(default=())
    """Options passed on to `mpbench run` (--trace, --only NAME, --no-report)."""

    @property
    def world_size(self) -> int:
        return self.nodes * self.procs_per_node

    @property
    def max_restarts(self) -> int:
        """One restart per run: a failed run ends its attempt and the next attempt goes on."""
        return len(self.run_ids)

    @property
    def run_ids(self) -> list[str]:
        from mpbench.plan.spec import expand

        return [s.run_id for s in expand(self.suite)]

    def torchrun_flags(self, endpoint: str | None, rdzv_id: str | None,
                       timeout_s: int = DEFAULT_RDZV_TIMEOUT_S) -> list[str]:
        """torchrun's flags; no endpoint: the operator's PET_* variables give the rendezvous."""
        flags = [f"--nnodes={self.nodes}", f"--nproc-per-node={self.procs_per_node}",
                 f"--max-restarts={self.max_restarts}"]
        if endpoint is not None:
            flags += ["--rdzv-backend=c10d", f"--rdzv-endpoint={endpoint}",
                      f"--rdzv-id={rdzv_id or 'mpbench'}",
                      f"--rdzv-conf=join_timeout={timeout_s}"]
        return flags

    def mpbench_args(self, suite_path: str) -> list[str]:
        """The module torchrun starts on every rank: `-m mpbench run SUITE --out RESULTS ...`.
        --resume always: a resubmitted job continues where the last one stopped."""
        return ["-m", "mpbench", "run", suite_path, "--out", self.results, "--device",
                self.device, "--resume", "--quiet", *self.run_args]


def check_plan(suite: Suite, nodes: int, procs_per_node: int, suite_file: Path) -> None:
    """The checks a launch makes before writing anything (exit code 2 on failure)."""
    if suite.parallel is None:
        raise UserError(f"{suite_file}: suite '{suite.name}' has no parallel: section, so it "
                        "cannot run across nodes; add one, e.g. `parallel: {strategy: ddp}`")
    world = nodes * procs_per_node
    wanted = suite.parallel.world_size
    if wanted is not None and wanted != world:
        raise UserError(f"--nodes {nodes} x {procs_per_node} per node makes world size {world} "
                        f"but the suite sets parallel.world_size {wanted}; make them agree "
                        "(or drop world_size)")
    problem = batch_problem(suite.train.batch_size, world)
    if problem:
        raise UserError(f"train.batch_size (the global batch): {problem}")
    for where, value in relative_files(suite):
        raise UserError(f"{suite_file}: {where} '{value}' is relative to the suite file, and "
                        "the nodes read a copy of the suite elsewhere; give an absolute path "
                        "on the shared file system")


def relative_files(suite: Suite) -> list[tuple[str, str]]:
    """The suite's file references that resolve against the suite file's directory."""
    found = []
    if suite.data.path and not PurePosixPath(suite.data.path).is_absolute():
        found.append(("data.path", suite.data.path))
    for i, model in enumerate(suite.models):
        if model.hf_config and not PurePosixPath(model.hf_config).is_absolute():
            found.append((f"models[{i}].hf_config", model.hf_config))
    return found


def check_results_dir(results: Path) -> None:
    """The shared results directory must be writable from here (exit code 2 otherwise)."""
    check_writable_dir(results, "--results")


def ship_suite(suite_file: Path, dest_dir: Path) -> Path:
    """Copy the suite next to the job file; refuse to replace a different file there."""
    from mpbench.results.output import write_output

    dest = dest_dir / suite_file.name
    text = suite_file.read_bytes()
    if dest.exists() and dest.resolve() != suite_file.resolve() and dest.read_bytes() != text:
        raise UserError(f"{dest} exists and differs from {suite_file}; a job may be reading it: "
                        "remove it, or write the job file elsewhere (-o)")
    if not dest.exists():
        write_output(dest, text, "-o")
    return dest


def torchrun_path() -> str:
    """The torchrun next to this interpreter (the same environment on every node)."""
    return str(Path(sys.executable).with_name("torchrun"))
