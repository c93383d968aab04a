"""`mpbench run SUITE`: train every run of a suite, store the records, print a summary.

With `--mlflow URI --tensorboard DIR` each run is logged to tracking tools as it finishes.
The trackers are the exporters' own (mpbench/interop/): each record is logged right after
it is written, and when the suite ends every record goes through `sync`, as
`mpbench export` does, so the live log equals an export after the fact. A bad URI or
directory is refused before training (exit 2); a tracking failure during the suite is one
warning line: the records are written regardless, and that tracker is off for the rest of
the suite (export later).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from mpbench.analysis.waterfall import has_profiles
from mpbench.cli.budget import apply_budget, report_budget
from mpbench.cli.progress import RunProgress
from mpbench.cli.results_out import check_out_dir, default_out, write_report_if_available
from mpbench.cli.summary import print_summary, skipped_lines
from mpbench.config.schema import ProfilerSpec, Suite
from mpbench.errors import UserError
from mpbench.results.env import environment_card
from mpbench.results.schema import RunRecord
from mpbench.results.store import ResultsDir, load_records
from mpbench.train.load import load_suite
from mpbench.train.runner import expand, resolve_device, run_suite, select, skip_reasons

# -- live tracking -------------------------------------------------------------------------

F = TypeVar("F", bound=Callable[..., Any])


def tracking_options(f: F) -> F:
    f = click.option("--tensorboard", "tensorboard", type=click.Path(path_type=Path),
                     metavar="DIR", help="Write TensorBoard event files per run under DIR.")(f)
    f = click.option("--mlflow-experiment", metavar="NAME",
                     help="MLflow experiment for --mlflow (default: mpbench-<suite>).")(f)
    f = click.option("--mlflow", "mlflow_uri", metavar="URI",
                     help="Log each run to MLflow as it finishes: sqlite:///PATH.db or "
                          "http(s)://HOST:PORT.")(f)
    return f


class LiveTracking:
    def __init__(self, out: Path, trackers: dict[str, tuple[Any, str]], targets: dict[str, str]):
        self.out = out
        self.trackers = trackers
        """format name -> (tracker, the export options that redo it later)"""
        self.targets = targets

    @classmethod
    def open(cls, out: Path, suite_name: str, mlflow_uri: str | None,
             experiment: str | None, tensorboard: Path | None) -> LiveTracking:
        """Connect before training; a UserError (exit 2) when a target cannot work."""
        trackers: dict[str, tuple[Any, str]] = {}
        targets: dict[str, str] = {}
        if experiment is not None and mlflow_uri is None:
            from mpbench.errors import UserError

            raise UserError("--mlflow-experiment: needs --mlflow URI")
        if mlflow_uri is not None:
            from mpbench.interop.mlflow_tracking import MlflowTracker

            name = experiment or f"mpbench-{suite_name}"
            trackers["mlflow"] = (MlflowTracker(mlflow_uri, name, out, "--mlflow"),
                                  f"--tracking-uri {mlflow_uri} --experiment {name}")
            targets["mlflow"] = f"{mlflow_uri}, experiment '{name}'"
        if tensorboard is not None:
            from mpbench.interop.tensorboard_events import TensorBoardTracker

            trackers["tensorboard"] = (TensorBoardTracker(tensorboard, out, "--tensorboard"),
                                       f"-o {tensorboard}")
            targets["tensorboard"] = f"{tensorboard}; view: tensorboard --logdir {tensorboard}"
        return cls(out, trackers, targets)

    def _guard(self, action: Callable[[Any], None]) -> None:
        for fmt, (tracker, redo) in list(self.trackers.items()):
            try:
                action(tracker)
            except Exception as exc:  # tracking must never cost the suite its results
                first = (str(exc).strip().splitlines() or [""])[0][:200]
                click.echo(f"warning: {fmt} logging failed ({type(exc).__name__}: {first}); "
                           f"the results in {self.out} are kept; {fmt} logging is off for the "
                           f"rest of this suite: `mpbench export {self.out} --format {fmt} "
                           f"{redo}` logs them later", err=True)
                del self.trackers[fmt]

    def log_run(self, record: RunRecord) -> None:
        self._guard(lambda t: t.log_run(record))

    def finish(self, records: list[RunRecord]) -> None:
        from mpbench.interop.tracking import sync

        self._guard(lambda t: sync(t, records))
        for fmt in self.trackers:
            click.echo(f"{fmt}: {len(records)} runs in {self.targets[fmt]}")


def with_trace(suite: Suite) -> Suite:
    """Turn on the tensor_cores profiler's trace export (adding the profiler if absent)."""
    profilers = [p for p in suite.profilers if p.name != "tensor_cores"]
    current = next((p for p in suite.profilers if p.name == "tensor_cores"), None)
    options = {**(current.options if current else {}), "trace": True}
    profilers.append(ProfilerSpec(name="tensor_cores", options=options))
    return suite.model_copy(update={"profilers": profilers})


def explain_hint(records: list[RunRecord], out: Path) -> str:
    """Where the waterfall of these runs is, or the one flag that records what it needs."""
    if has_profiles(records):
        return f"where each recipe's time went: mpbench explain {out}"
    return ("where each recipe's time went: not recorded (no op buckets); run with --trace to "
            "add them, then `mpbench explain`")


@click.command("run")
@click.argument("suite_file", metavar="SUITE", type=click.Path(path_type=Path))
@click.option("--out", "-o", type=click.Path(path_type=Path),
              help="Results directory (default: reports/<suite>-<time>).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="Where to train; the suite's matching device profile is used.")
@click.option("--only", multiple=True, metavar="NAME",
              help="Only runs whose precision, model or run id is NAME (repeatable).")
@click.option("--resume", is_flag=True, help="Continue an interrupted suite in --out.")
@click.option("--quiet", "-q", is_flag=True, help="Plain lines instead of progress bars.")
@click.option("--report/--no-report", default=True, show_default=True,
              help="Write report.html next to the results.")
@click.option("--trace", is_flag=True,
              help="Export a Chrome/Perfetto trace of a few profiled steps per run "
                   "(adds the tensor_cores profiler); traces go to <out>/traces/.")
@click.option("--nproc", type=click.IntRange(min=1), default=None, metavar="N",
              help="Data-parallel: start N processes with torchrun (needs a parallel: section).")
@click.option("--repeats", type=click.IntRange(1, 100), default=None, metavar="N",
              help="Run each configuration N times, interleaved (A B C A B C), each run in a "
                   "fresh process (overrides the suite's repeats:).")
@click.option("--isolate/--in-process", "isolate", default=None,
              help="Each run in a fresh process (default with --repeats above 1: a process's "
                   "first run pays one-time allocations), or all in this one (faster start).")
@tracking_options
def run(suite_file: Path, out: Path | None, device: str, only: tuple[str, ...], resume: bool,
        quiet: bool, report: bool, trace: bool = False, nproc: int | None = None,
        repeats: int | None = None, isolate: bool | None = None,
        mlflow_uri: str | None = None, mlflow_experiment: str | None = None,
        tensorboard: Path | None = None) -> None:
    """Train and measure every run of SUITE (a YAML file); store one record per run.

    \b
    Examples:
      mpbench run suites/gpt.yaml
      mpbench run suites/gpt.yaml --only fp32 --only bf16 -o reports/mine
      mpbench run suites/gpt.yaml -o reports/mine --resume
      mpbench run suites/smoke.yaml --trace      # open <out>/traces/*.json in Perfetto
      mpbench run suites/parallel.yaml --nproc 2   # or: torchrun --nproc-per-node 2 -m mpbench run ...
      mpbench run suites/smoke.yaml --mlflow sqlite:///mlflow.db --tensorboard tb
      mpbench run suites/smoke.yaml --repeats 3    # 3 fresh processes per configuration
    """
    dev = resolve_device(device)
    suite = load_suite(suite_file, "cuda" if dev.type == "cuda" else "cpu")
    if repeats is not None:
        suite = suite.model_copy(update={"repeats": repeats})
    fresh = suite.repeats > 1 if isolate is None else isolate
    if trace:
        suite = with_trace(suite)
    if suite.parallel is not None or nproc is not None or "TORCHELASTIC_RUN_ID" in os.environ:
        if mlflow_uri or tensorboard:
            raise UserError("--mlflow/--tensorboard: not available with parallel runs yet; run "
                            "without them, then `mpbench export OUT --format mlflow|tensorboard`")
        if suite.budget is not None:  # not silently ignored: ranks train the configured steps
            where = f"devices.{suite.profile}.budget" if suite.profile != "default" else "budget"
            raise UserError(f"{suite_file}: {where}: a time budget is not applied to parallel "
                            "(torchrun) runs; remove it, or set train.steps to what fits")
        from mpbench.cli.parallel import run_parallel  # torchrun launch or one rank

        forward = (("--trace",) if trace else ()) + (
            ("--repeats", str(repeats)) if repeats is not None else ())
        return run_parallel(suite, suite_file, out, dev, only, resume, quiet, report, nproc,
                            forward)
    specs = select(expand(suite), only)
    if not specs:
        ids = ", ".join(sorted({s.precision.name for s in expand(suite)} | {m.label for m in suite.models}))
        raise UserError(f"--only {' '.join(only)}: matches no run; names here: {ids}")
    out = out or default_out(suite.name)
    check_out_dir(out, suite.name, resume)
    live = LiveTracking.open(out, suite.name, mlflow_uri, mlflow_experiment, tensorboard)
    console = Console()
    plain = quiet or not console.is_terminal
    if not console.is_terminal:
        console = Console(width=150)  # logs and CI: no wrapping of the summary table
    env = environment_card()
    skips = skip_reasons(specs, dev)
    if skips:  # named once here and under the summary; the progress shows the runs that train
        for line in skipped_lines((s.precision.name, s.model_label, skips[s.run_id])
                                  for s in specs if s.run_id in skips):
            console.print(line, highlight=False, soft_wrap=True)
    budgeted = apply_budget(suite, specs, only, suite_file, dev, env, console, out, resume, report,
                            set(skips))
    suite, specs = budgeted.suite, budgeted.specs
    results = ResultsDir(out)
    results.create(suite.name, suite.model_dump(mode="json"), suite_file.read_text(encoding="utf-8"))
    where = env.device_name(dev.type)
    reps = f", {suite.repeats} repeats per configuration" if suite.repeats > 1 else ""
    reps += ", each in a fresh process" if fresh else ""
    trained = len(specs) - len(skips)
    console.print(f"suite {suite.name} (profile {suite.profile}) on {dev} ({where}): "
                  f"{trained} run{'' if trained == 1 else 's'} to train{reps}"
                  + (f", {len(skips)} skipped here" if skips else "") + f" -> {out}",
                  highlight=False)
    records: list[RunRecord] = []
    progress = RunProgress(console, plain, set(skips))
    try:
        with progress.live():
            for event in run_suite(suite, results, dev, env, specs, resume, progress.callback,
                                   suite_file.parent, isolate=fresh, source=budgeted.source,
                                   budget=budgeted.note_for):
                record = progress.follow(event)
                if record is not None:
                    records.append(record)
                    live.log_run(record)
    except KeyboardInterrupt:
        done = len(results.recorded_ids())
        console.print(f"interrupted: {done} of {len(specs)} runs are recorded in {out}; continue with "
                      f"`mpbench run {suite_file} --out {out} --resume`", highlight=False)
        sys.exit(130)
    all_records = load_records(out)
    print_summary(console, all_records)
    console.print(explain_hint(all_records, out), highlight=False, soft_wrap=True)
    console.print(f"results: {out.resolve()}", highlight=False, soft_wrap=True)
    if report:
        write_report_if_available(console, out)
    report_budget(console, budgeted.note, [r for r in records if r.status != "skipped"])
    live.finish(all_records)


COMMANDS = [run]
