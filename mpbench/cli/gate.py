"""`mpbench gate CURRENT --baseline BASELINE`: fail CI on a real regression, not on noise."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mpbench.gate import GateReport, Limits, run_gate
from mpbench.gate.summary import write_outputs

STYLES = {"regression": "bold red", "inconclusive": "yellow", "improved": "green", "ok": ""}


class Fraction(click.ParamType):
    """'5%' or '0.05' -> 0.05. A bare number of 1 or more is refused as ambiguous."""

    name = "fraction"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        text = str(value).strip()
        try:
            number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            self.fail(f"{text!r} is not a fraction; write it as 5% or 0.05", param, ctx)
        if not text.endswith("%") and number >= 1:
            self.fail(f"{text!r} is ambiguous; write {text}% for percent, or a fraction "
                      "below 1 such as 0.05", param, ctx)
        if number < 0 or number != number:
            self.fail(f"{text!r} must not be negative", param, ctx)
        return number


class LossTolerance(click.ParamType):
    """'0.02' (nats, absolute) or '1%' (of the baseline loss) -> (value, relative)."""

    name = "tolerance"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> tuple[float, bool]:
        if isinstance(value, tuple):
            return value
        text = str(value).strip()
        relative = text.endswith("%")
        try:
            number = float(text[:-1]) / 100 if relative else float(text)
        except ValueError:
            self.fail(f"{text!r} is not a tolerance; write nats such as 0.02, or a share of "
                      "the baseline loss such as 1%", param, ctx)
        if number < 0 or number != number:
            self.fail(f"{text!r} must not be negative", param, ctx)
        return number, relative


def gate_table(report: GateReport) -> Table:
    table = Table(title=f"mpbench gate: {report.current} vs baseline {report.baseline}")
    for col in ("run", "metric", "baseline", "current", "change [CI]", "verdict"):
        table.add_column(col, justify="right" if col in ("baseline", "current") else "left")
    for f in report.findings:  # Text, not markup: values hold brackets
        verdict = Text.assemble((f.verdict, STYLES[f.verdict]), f": {f.detail}")
        table.add_row(*(Text(c) for c in (f.config, f.metric, f.baseline, f.current, f.change)),
                      verdict)
    return table


@click.command("gate")
@click.argument("current", type=click.Path(path_type=Path))
@click.option("--baseline", "-b", "baselines", required=True, multiple=True,
              type=click.Path(path_type=Path),
              help="Results directory, directory of results directories, or `mpbench export` "
                   "file to compare against; repeat it to pool several (their spread counts as "
                   "noise).")
@click.option("--max-slowdown", type=Fraction(), default="5%", show_default=True,
              help="Allowed step-time increase (5% or 0.05); a slowdown must also be significant.")
@click.option("--max-memory-growth", type=Fraction(), default="3%", show_default=True,
              help="Allowed peak-memory increase.")
@click.option("--loss-tolerance", type=LossTolerance(), default="0.02", show_default=True,
              help="Allowed eval-loss increase: nats (0.02) or a share of the baseline (1%).")
@click.option("--alpha", type=click.FloatRange(0, 0.5, min_open=True), default=0.05,
              show_default=True, help="Significance level of the step-time test.")
@click.option("--strict", is_flag=True,
              help="Also fail on inconclusive checks and on baseline runs missing from CURRENT.")
@click.option("--allow-mismatch", is_flag=True,
              help="Compare even when the device or device profile differs.")
@click.option("--normalize-by-probe", is_flag=True,
              help="Divide each run's step times by its machine-drift probe time (the machine's "
                   "own speed change between the runs is divided out).")
@click.option("--summary-md", type=click.Path(path_type=Path), help="Write a Markdown summary.")
@click.option("--json", "json_path", type=click.Path(path_type=Path),
              help="Write every finding as JSON.")
def gate(current: Path, baselines: tuple[Path, ...], max_slowdown: float, max_memory_growth: float,
         loss_tolerance: tuple[float, bool], alpha: float, strict: bool, allow_mismatch: bool,
         normalize_by_probe: bool, summary_md: Path | None, json_path: Path | None) -> None:
    """Compare CURRENT results with a baseline; exit 1 on a regression, 2 on bad input.

    Runs are matched by model, precision, batch size, sequence length, device and profile
    (seeds and repeats pooled). Each run (process) is one sample: a step-time regression
    needs a significant run-level test (exact one-sided Mann-Whitney U on per-run median
    step times, current runs divided by 1 + --max-slowdown, p <= --alpha) AND a median
    slowdown beyond --max-slowdown, and with several
    baselines a slowdown beyond their spread; at 3 vs 3 runs the smallest p is 1/20 (every
    current run slower than every baseline run). Too few runs to reach --alpha (1 per side;
    2 per side at 0.05; 3 per side at 0.01) is 'inconclusive' with the repeats needed (fails
    only with --strict): record baselines with `mpbench run --repeats 3`. Memory growth, worse eval loss and runs that used to succeed and now
    fail (oom, diverged, failed, skipped for a new reason) are regressions too.
    The Markdown summary is appended to $GITHUB_STEP_SUMMARY when that is set.

    \b
    Examples:
      mpbench gate reports/today --baseline baselines/gpt-cpu
      mpbench gate reports/today -b baseline.json --max-slowdown 10% --summary-md gate.md
      mpbench gate reports/today -b main-1.json -b main-2.json -b main-3.json
      mpbench gate reports/today -b nightly/ --normalize-by-probe   # nightly/*/ pooled
    """
    limits = Limits(max_slowdown=max_slowdown, max_memory_growth=max_memory_growth,
                    loss_tolerance=loss_tolerance[0], loss_relative=loss_tolerance[1],
                    alpha=alpha, normalize_by_probe=normalize_by_probe)
    report = run_gate(current, list(baselines), limits, allow_mismatch, strict)
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # CI logs: keep table rows on one line
    console.print(gate_table(report))
    if report.only_current:
        console.print(f"new runs without a baseline: {', '.join(report.only_current)}",
                      highlight=False)
    if report.only_baseline:
        console.print(f"baseline runs missing from current: {', '.join(report.only_baseline)}",
                      highlight=False)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)
    for path in write_outputs(report, summary_md, json_path):
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)
    style = "bold red" if report.exit_code else "bold green"
    console.print(Text(report.headline(), style=style), soft_wrap=True)
    sys.exit(report.exit_code)


COMMANDS = [gate]
