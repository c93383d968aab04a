"""`mpbench fingerprint run SUITE` and `mpbench fingerprint gate CURRENT --baseline BASELINE`:
record the numerics of a short fixed-seed run per recipe, and compare two such records down
to the step, layer and tensor (upgrade safety for torch, CUDA, TransformerEngine, torchao)."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import torch
from rich.console import Console
from rich.text import Text

from mpbench.analysis.fingerprint_compare import compare_sets
from mpbench.cli.progress import RunProgress
from mpbench.cli.results_out import check_out_dir, default_out
from mpbench.data import make_source
from mpbench.errors import UserError
from mpbench.gate.summary import fingerprint_dict, fingerprint_markdown, write_markdown
from mpbench.plan.fingerprint import FingerprintPlan, fingerprint_runs, fingerprint_suite
from mpbench.results.env import environment_card
from mpbench.results.output import write_output
from mpbench.results.store import ResultsDir, load_records
from mpbench.train.load import load_suite
from mpbench.train.loop import train_run
from mpbench.train.runner import RunEvent, resolve_device, select


@contextlib.contextmanager
def deterministic(on: bool) -> Iterator[None]:
    """Deterministic kernels for the fingerprint (warn-only: an op without a deterministic
    kernel still runs, and the record says the setting). cuBLAS needs its workspace setting
    before its first use, so it is set here when absent."""
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled())
    if on and torch.cuda.is_available():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(on, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def probe_list(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r}: give step numbers separated by commas, e.g. "
                                 "0,1,2,4,7") from None


@click.group("fingerprint")
def fingerprint() -> None:
    """Numerics fingerprints: record one per recipe, compare against a baseline.

    \b
    Examples:
      mpbench fingerprint run suites/fingerprint.yaml -o baselines/fp-cpu
      mpbench fingerprint gate reports/fp-today --baseline baselines/fp-cpu --summary-md fp.md
    """


@fingerprint.command("run")
@click.argument("suite_file", metavar="SUITE", type=click.Path(path_type=Path))
@click.option("--out", "-o", type=click.Path(path_type=Path),
              help="Results directory (default: reports/<suite>-fingerprint-<time>).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True)
@click.option("--steps", type=click.IntRange(1, 10_000), default=8, show_default=True,
              help="Training steps of each fingerprint (no warm-up, no eval).")
@click.option("--probe-steps", default="0,1,2,4,7", show_default=True, callback=probe_list,
              help="Steps (0-based) whose layers are probed.")
@click.option("--repeats", type=click.IntRange(1, 20), default=2, show_default=True,
              help="Runs of each recipe at the fixed seed (repeats measure the tolerance).")
@click.option("--band-seeds", type=click.IntRange(1, 20), default=3, show_default=True,
              help="FP32 seeds whose spread is the band of a change that matters (1: no band; "
                   "such a directory can be compared, not be a baseline).")
@click.option("--threads", type=click.IntRange(0, 1024), default=1, show_default=True,
              help="torch CPU threads for the runs (a fingerprint taken with another count may "
                   "differ in the last bits); 0 keeps the suite's setting.")
@click.option("--only", multiple=True, metavar="NAME",
              help="Only runs whose precision, model or run id is NAME (repeatable).")
@click.option("--deterministic/--no-deterministic", "determinism", default=True,
              show_default=True,
              help="torch.use_deterministic_algorithms (warn-only) during the runs.")
@click.option("--resume", is_flag=True, help="Continue an interrupted fingerprint in --out.")
def run(suite_file: Path, out: Path | None, device: str, steps: int,
        probe_steps: tuple[int, ...], repeats: int, band_seeds: int, threads: int,
        only: tuple[str, ...], determinism: bool, resume: bool) -> None:
    """Record the numerics fingerprint of SUITE's recipes (models and data as the suite has
    them, a short fixed-seed run each), with repeats and an FP32 seed band."""
    plan = FingerprintPlan(steps, probe_steps, repeats, band_seeds, threads or None)
    record(suite_file, out, device, plan, determinism, resume, only)


def record(suite_file: Path, out: Path | None, device: str, plan: FingerprintPlan,
           determinism: bool = True, resume: bool = False, only: tuple[str, ...] = ()) -> Path:
    """Train the fingerprint runs of `suite_file` into `out`; returns the directory."""
    dev = resolve_device(device)
    suite = fingerprint_suite(load_suite(suite_file, "cuda" if dev.type == "cuda" else "cpu"),
                              plan, str(suite_file))
    specs = select(fingerprint_runs(suite, plan), only)
    if not specs:
        raise UserError(f"--only {' '.join(only)}: matches no fingerprint run")
    out = out or default_out(suite.name)
    check_out_dir(out, suite.name, resume)
    results = ResultsDir(out)
    results.create(suite.name, suite.model_dump(mode="json"),
                   suite_file.read_text(encoding="utf-8"))
    console = Console()
    band = f", FP32 at {plan.band_seeds} seeds" if plan.band_seeds > 1 else ", no seed band"
    console.print(f"fingerprint of {suite_file} on {dev}: {len(specs)} runs ({plan.repeats} per "
                  f"recipe{band}), {plan.steps} steps each -> {out}", highlight=False)
    progress = RunProgress(console, True)
    t0 = time.perf_counter()
    gc.freeze()  # the runs' gc.collect() then skips torch's own objects (0.25 s a run here)
    source = make_source(suite.data, suite_file.parent)
    env = environment_card()
    done = results.recorded_ids() if resume else set()
    if suite.train.threads:
        torch.set_num_threads(suite.train.threads)
    with deterministic(determinism):
        for i, spec in enumerate(specs):  # train_run, not probed_run: no drift probe needed
            if spec.run_id in done:
                progress.follow(RunEvent(spec, i, len(specs), resumed=True))
                continue
            progress.follow(RunEvent(spec, i, len(specs)))
            run = train_run(spec, source, dev, env).model_copy(update={"repeat": spec.repeat})
            results.write(run)
            progress.follow(RunEvent(spec, i, len(specs), record=run))
    console.print(f"fingerprint recorded in {time.perf_counter() - t0:.1f} s: {out.resolve()}",
                  highlight=False, soft_wrap=True)
    return out


@fingerprint.command("gate")
@click.argument("current", type=click.Path(path_type=Path))
@click.option("--baseline", "-b", required=True, type=click.Path(path_type=Path),
              help="Fingerprint results directory to compare against.")
@click.option("--summary-md", type=click.Path(path_type=Path), help="Write a Markdown summary.")
@click.option("--json", "json_path", type=click.Path(path_type=Path),
              help="Write the comparison as JSON.")
def gate(current: Path, baseline: Path, summary_md: Path | None, json_path: Path | None) -> None:
    """Compare CURRENT's fingerprints with BASELINE's; exit 1 only for a change beyond the
    FP32 seed band, 2 on bad input.

    Per recipe: identical; within the repeat tolerance (the largest difference between
    same-code repeats); changed inside the FP32 seed band; or changed beyond it (or a run
    that now fails). A change names the first step, layer and tensor that left the
    tolerance, with both values, and the software that differs. The Markdown summary is
    appended to $GITHUB_STEP_SUMMARY when that is set.
    """
    comparison = compare_sets(load_records(baseline), load_records(current), str(baseline),
                              str(current))
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(fingerprint_markdown(comparison), highlight=False, soft_wrap=True, markup=False)
    written = write_markdown(fingerprint_markdown(comparison), summary_md)
    if json_path is not None:
        written.append(write_output(json_path, json.dumps(fingerprint_dict(comparison), indent=1),
                                    "--json"))
    for path in written:
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)
    style = "bold red" if comparison.exit_code else "bold green"
    console.print(Text(comparison.headline(), style=style), soft_wrap=True)
    sys.exit(comparison.exit_code)


COMMANDS = [fingerprint]
