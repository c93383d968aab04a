"""`mpbench export RESULTS --format NAME`: results for other tools (mpbench/interop/)."""

from __future__ import annotations

from pathlib import Path

import click

from mpbench.errors import UserError
from mpbench.interop import EXPORTERS, ExportRequest
from mpbench.results.store import load_records


def _formats_help() -> str:
    return "; ".join(f"{name}: {cls.summary}" for name, cls in sorted(EXPORTERS.items()))


@click.command("export")
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(sorted(EXPORTERS)), default="pytest-benchmark",
              show_default=True, help=f"Output format. {_formats_help()}.")
@click.option("--out", "-o", "output", type=click.Path(path_type=Path),
              help="pytest-benchmark: the file to write (.json); tensorboard: the log directory.")
@click.option("--tracking-uri", metavar="URI",
              help="mlflow: the tracking store, sqlite:///PATH.db or http(s)://HOST:PORT "
                   "(default: $MLFLOW_TRACKING_URI, else sqlite:///RESULTS/mlflow.db).")
@click.option("--experiment", metavar="NAME",
              help="mlflow: the experiment (default: mpbench-<suite>).")
def export(results: Path, fmt: str, output: Path | None, tracking_uri: str | None,
           experiment: str | None) -> None:
    """Write RESULTS in another tool's format.

    pytest-benchmark: one benchmark per run, one round per measured training step (seconds),
    so `pytest-benchmark compare FILE...` can read it; the run's configuration, peak memory,
    eval loss and status ride along, so the file also serves as `mpbench gate --baseline`.

    mlflow: one MLflow run per mpbench run, nested under a parent run for the suite, with
    params, step and summary metrics (speedup over fp32 with its interval) and the record and
    report as artifacts. Exporting again does not duplicate runs.

    tensorboard: event files per run under DIR/<suite>-<time>/<run_id>/.

    \b
    Examples:
      mpbench export reports/gpt-20261123-1200 --format pytest-benchmark -o baseline.json
      pytest-benchmark compare baseline.json new.json --group-by=group --columns=median,iqr
      mpbench export reports/gpt-20261123-1200 --format mlflow --tracking-uri http://127.0.0.1:5000
      mpbench export reports/gpt-20261123-1200 --format tensorboard -o tb && tensorboard --logdir tb
    """
    records = load_records(results)
    if not records:
        raise UserError(f"RESULTS: {results} holds no runs; run the suite first")
    request = ExportRequest(results, records, output, tracking_uri, experiment)
    click.echo(EXPORTERS[fmt]().export(request))


COMMANDS = [export]
