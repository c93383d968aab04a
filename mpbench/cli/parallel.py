"""`mpbench run` for a suite with a parallel: section: launch torchrun, or be one of its ranks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from rich.console import Console

from mpbench.config.schema import Suite
from mpbench.errors import UserError
from mpbench.plan.spec import RunSpec


def _specs(suite: Suite, only: tuple[str, ...]) -> list[RunSpec]:
    from mpbench.train.runner import expand, select

    specs = select(expand(suite), only)
    if not specs:
        names = sorted({s.run_id for s in expand(suite)})
        raise UserError(f"--only {' '.join(only)}: matches no run; run ids here: {', '.join(names)}")
    return specs


def _child_args(suite_file: Path, out: Path, device: str, only: tuple[str, ...],
                quiet: bool, forward: tuple[str, ...] = ()) -> list[str]:
    args = ["run", str(suite_file), "--out", str(out), "--device", device, "--resume",
            "--no-report", *forward]
    args += [f"--only={name}" for name in only]
    return [*args, "--quiet"] if quiet else args


def _summary(console: Console, out: Path, report: bool) -> None:
    from mpbench.cli.results_out import write_report_if_available
    from mpbench.cli.summary import print_summary
    from mpbench.results.store import load_records

    if not (out / "runs").is_dir():
        return
    print_summary(console, load_records(out))
    console.print(f"results: {out.resolve()}", highlight=False, soft_wrap=True)
    if report:
        write_report_if_available(console, out)


def run_parallel(suite: Suite, suite_file: Path, out: Path | None, device: torch.device,
                 only: tuple[str, ...], resume: bool, quiet: bool, report: bool,
                 nproc: int | None, forward: tuple[str, ...] = ()) -> None:
    """`forward`: the run options that change the suite (--trace, --repeats N), passed on to
    every rank, which loads the suite file again."""
    from mpbench.distributed.group import TorchrunEnv

    env = TorchrunEnv.detect()
    if env is None:
        _launch(suite, suite_file, out, device, only, resume, quiet, report, nproc, forward)
    else:
        _as_rank(env, suite, suite_file, out, device, only, resume, quiet, report)


def _launch(suite: Suite, suite_file: Path, out: Path | None, device: torch.device,
            only: tuple[str, ...], resume: bool, quiet: bool, report: bool,
            nproc: int | None, forward: tuple[str, ...] = ()) -> None:
    from mpbench.cli.results_out import check_out_dir, default_out
    from mpbench.distributed.launch import check_world, launch, needs_parallel, with_world_size

    needs_parallel(suite, "--nproc")
    assert suite.parallel is not None
    world = nproc or suite.parallel.world_size
    if world is None:
        raise UserError("--nproc: how many processes? pass --nproc N or set parallel.world_size")
    check_world(suite, world, world, device.type, f"--nproc {world}")
    specs = _specs(with_world_size(suite, world), only)
    out = out or default_out(suite.name)
    check_out_dir(out, suite.name, resume)
    console = Console() if Console().is_terminal else Console(width=150)
    console.print(f"suite {suite.name}: {len(specs)} runs on {world} processes "
                  f"(torchrun, {device.type}) -> {out}", highlight=False)
    try:
        code = launch(world, len(specs),
                      _child_args(suite_file, out, device.type, only, quiet, forward))
    except KeyboardInterrupt:
        console.print(f"interrupted; continue with `mpbench run {suite_file} --nproc {world} "
                      f"--out {out} --resume`", highlight=False)
        sys.exit(130)
    _summary(console, out, report)
    if code != 0:
        console.print(f"torchrun exited with code {code}; recorded runs are kept: continue with "
                      f"`mpbench run {suite_file} --nproc {world} --out {out} --resume`",
                      highlight=False)
        sys.exit(1)


def _as_rank(env: object, suite: Suite, suite_file: Path, out: Path | None, device: torch.device,
             only: tuple[str, ...], resume: bool, quiet: bool, report: bool) -> None:
    from mpbench.cli.progress import RunProgress
    from mpbench.cli.results_out import check_out_dir
    from mpbench.distributed.group import TorchrunEnv, init_group, rank_device
    from mpbench.distributed.launch import (
        check_world,
        launched_by_parent,
        needs_parallel,
        suite_sha256,
        with_world_size,
    )
    from mpbench.distributed.nodes import NodesRefused, agree_on_nodes, leave_refused
    from mpbench.distributed.runner import AttemptEnded, ParallelRunner
    from mpbench.results.env import environment_card
    from mpbench.results.store import ResultsDir

    assert isinstance(env, TorchrunEnv)
    needs_parallel(suite, "torchrun")
    check_world(suite, env.world_size, env.local_world_size, device.type, "torchrun")
    suite = with_world_size(suite, env.world_size)
    assert suite.parallel is not None
    specs = _specs(suite, only)
    resume = resume or env.restart_count > 0  # a restarted attempt continues the suite
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in suite.name)
    out = out or Path("reports") / f"{safe}-torchrun-{env.run_id[:8]}"
    rank0 = env.rank == 0
    dev = rank_device(device.type, env)
    group = init_group(env, dev, suite.parallel)
    problem = None
    if rank0:
        try:
            check_out_dir(out, suite.name, resume)
        except UserError as exc:  # every rank hears it, so none waits for a peer that left
            problem = str(exc)
    card = environment_card()  # after rank_device: this rank's own GPU
    try:
        nodes = agree_on_nodes(group, card, suite_sha256(suite_file.read_bytes()), problem)
    except NodesRefused as exc:
        leave_refused(exc)
    results = None
    if rank0:
        results = ResultsDir(out)
        results.create(suite.name, suite.model_dump(mode="json"),
                       suite_file.read_text(encoding="utf-8"))
    console = Console(quiet=not rank0)
    if not console.is_terminal:
        console = Console(quiet=not rank0, width=150)  # logs and CI: no wrapping
    plain = quiet or not console.is_terminal
    if env.restart_count == 0:
        console.print(f"suite {suite.name} (profile {suite.profile}) on {env.world_size} ranks, "
                      f"{group.backend}: {len(specs)} runs -> {out}", highlight=False)
    else:
        console.print(f"torchrun restart {env.restart_count}: resuming {out}", highlight=False)
    progress = RunProgress(console, plain)
    runner = ParallelRunner(suite, group, card, results, suite_file.parent, out, nodes)
    try:
        with progress.live():
            for event in runner.run(specs, resume, progress.callback):
                progress.follow(event)
    except KeyboardInterrupt:
        console.print(f"interrupted: recorded runs are in {out}; continue with --out {out} "
                      "--resume", highlight=False)
        sys.stdout.flush()
        os._exit(130)
    except AttemptEnded as exc:
        console.print(f"{exc}; a failed rank leaves the process group unusable, so this "
                      "attempt ends here. torchrun --max-restarts (set by mpbench run --nproc) "
                      f"continues the suite; or re-run with --out {out} --resume",
                      highlight=False)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exc.exit_code)  # records are on disk; tearing down a broken group can block
    group.destroy()
    if rank0 and not launched_by_parent():
        _summary(console, out, report)
