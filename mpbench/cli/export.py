"""`mpbench export RESULTS --format pytest-benchmark -o FILE.json`: results for other tools."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mpbench.errors import UserError
from mpbench.interop.pytest_benchmark import to_pytest_benchmark
from mpbench.results.output import write_output
from mpbench.results.store import load_records


@click.command("export")
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["pytest-benchmark"]), default="pytest-benchmark",
              show_default=True, help="Output format.")
@click.option("--out", "-o", "output", required=True, type=click.Path(path_type=Path),
              help="File to write (.json).")
def export(results: Path, fmt: str, output: Path) -> None:
    """Write RESULTS in another tool's format.

    pytest-benchmark: one benchmark per run, one round per measured training step (seconds),
    so `pytest-benchmark compare FILE...` can read it; the run's configuration, peak memory,
    eval loss and status ride along, so the file also serves as `mpbench gate --baseline`.

    \b
    Examples:
      mpbench export reports/gpt-20261123-1200 --format pytest-benchmark -o baseline.json
      pytest-benchmark compare baseline.json new.json --group-by=group --columns=median,iqr
    """
    records = load_records(results)
    if not records:
        raise UserError(f"RESULTS: {results} holds no runs; run the suite first")
    if output.is_dir():
        raise UserError(f"--out: {output} is a directory; give a file name such as "
                        f"{output / 'baseline.json'}")
    data = to_pytest_benchmark(records)
    write_output(output, json.dumps(data, indent=1), "--out")
    timed = len(data["benchmarks"])
    click.echo(f"wrote {output}: {timed} benchmarks ({fmt}), "
               f"{len(records) - timed} runs without step times")


COMMANDS = [export]
