"""`mpbench show RESULTS`: the summary table of a results directory."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from mpbench.cli.summary import print_summary
from mpbench.results.store import load_records


@click.command("show")
@click.argument("results", type=click.Path(path_type=Path))
def show(results: Path) -> None:
    """Print the summary table of a results directory.

    \b
    Example:
      mpbench show reports/gpt-20261123-120000
    """
    records = load_records(results)
    console = Console()
    if not console.is_terminal:
        console = Console(width=150)
    if not records:
        console.print(f"{results}: no runs recorded yet")
        return
    print_summary(console, records)


COMMANDS = [show]
