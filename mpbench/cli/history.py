"""`mpbench history DIR...`: the trend of each configuration over stored results, and its
change points; exit 1 while the latest segment is a regression against the one before it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from mpbench.analysis.history import Series, build_series, load_points, since
from mpbench.cli.gate import Fraction
from mpbench.results.output import write_output


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.4f}" if v < 10 else f"{v:.1f}" if v < 1000 else f"{v:,.0f}"


def history_table(series: list[Series], labels: list[str]) -> Table:
    table = Table(title=f"mpbench history: {len(labels)} results, {labels[0]} .. {labels[-1]}")
    for col in ("configuration", "metric", "first", "latest", "trend", "change points"):
        table.add_column(col, justify="right" if col in ("first", "latest") else "left")
    for s in series:
        present = [v for v in s.values if v is not None]
        lo, hi = min(present), max(present)
        bars = "▁▂▃▄▅▆▇█"
        trend = "".join(" " if v is None else bars[0 if hi == lo else
                        int((v - lo) / (hi - lo) * (len(bars) - 1))] for v in s.values)
        cps = Text()
        for cp in s.change_points:
            style = {"regression": "bold red", "improvement": "green"}.get(cp.kind, "")
            cps.append(f"{cp.kind} at {labels[cp.index]}: {cp.change:+.1%}; ", style)
        if s.open_regression is not None:
            cps.append(f"now: {s.open_regression.change:+.1%} since "
                       f"{labels[s.open_regression.index]}", "bold red")
        if not cps.plain:
            cps = Text("none" if len(present) == len(s.values) else "gaps: not searched")
        table.add_row(s.config, f"{s.metric} ({s.unit})", _fmt(s.values[0]), _fmt(s.values[-1]),
                      trend, cps)
    return table


@click.command("history")
@click.argument("results", nargs=-1, type=click.Path(path_type=Path))
@click.option("--min-change", type=Fraction(), default="5%", show_default=True,
              help="A change point moves its metric by more than this to count.")
@click.option("--since", "accepted", metavar="POINT",
              help="Start the series at POINT (a results directory's name, or an ISO date): "
                   "accept a known change so that it no longer fails the job.")
@click.option("--json", "json_path", type=click.Path(path_type=Path),
              help="Write every series and change point as JSON.")
def history(results: tuple[Path, ...], min_change: float, accepted: str | None,
            json_path: Path | None) -> None:
    """Trend and change points over a series of results directories (oldest first by start
    time); a directory holding results directories counts as all of them. Exit 1 while a
    series stands in a regression: its latest segment is worse than the segment before it
    by more than --min-change (not recovered from, not accepted with --since); 2 on bad input.

    \b
    Examples:
      mpbench history reports/nightly-*
      mpbench history reports/nightly/ --since nightly-06   # accept the change at nightly-06
      mpbench history reports/nightly/ --json history.json
      mpbench report --history reports/nightly/ -o history.html   # the plots
    """
    points = load_points(list(results))
    if accepted is not None:
        points = since(points, accepted)
    series = build_series(points, min_change)
    labels = [p.label for p in points]
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(history_table(series, labels))
    latest = [(s, cp) for s in series if (cp := s.open_regression) is not None]
    if json_path is not None:
        write_output(json_path, json.dumps({
            "points": [{"label": p.label, "started_at": p.started_at} for p in points],
            "series": [{"config": s.config, "metric": s.metric, "unit": s.unit,
                        "values": s.values, "runs": s.runs,
                        "change_points": [{"index": c.index, "at": labels[c.index],
                                           "before": c.before, "after": c.after,
                                           "change": c.change, "kind": c.kind}
                                          for c in s.change_points],
                        "open_regression": None if s.open_regression is None else {
                            "since": labels[s.open_regression.index],
                            "before": s.open_regression.before,
                            "after": s.open_regression.after,
                            "change": s.open_regression.change}} for s in series],
            "open_regressions": [f"{s.config} {s.metric}" for s, _ in latest],
        }, indent=1), "--json")
        console.print(f"wrote {json_path}", highlight=False, soft_wrap=True)
    if latest:
        parts = [f"{s.config} {s.metric} {cp.change:+.1%} since {labels[cp.index]}"
                 for s, cp in latest]
        first = labels[min(cp.index for _, cp in latest)]
        console.print(Text("history: regressed, not recovered at the latest point "
                           f"({labels[-1]}): " + "; ".join(parts) + f" (accept a known change "
                           f"with --since {first})", style="bold red"), soft_wrap=True)
        sys.exit(1)
    console.print(Text(f"history: no open regression at the latest point ({labels[-1]})",
                       style="bold green"), soft_wrap=True)


COMMANDS = [history]
