"""Results written out: `mpbench report RESULTS...` (the HTML comparison page, or a Markdown
verdict table) and `mpbench export RESULTS --format NAME` (results for other tools,
mpbench/interop/)."""

from __future__ import annotations

from pathlib import Path

import click

from mpbench.errors import UserError
from mpbench.interop import EXPORTERS, ExportRequest
from mpbench.report import FORMATS, write_report
from mpbench.results.store import load_records


@click.command("report")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", "-o", type=click.Path(path_type=Path),
              help="Output file (default: report.html, or report.md with --format md, in the "
                   "first results directory).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="html", show_default=True,
              help="html: the full self-contained page; md: the verdict table for CI logs.")
@click.option("--summary-md", type=click.Path(path_type=Path),
              help="Also write the Markdown verdict table (as `mpbench gate --summary-md`).")
@click.option("--history", is_flag=True,
              help="RESULTS are a series (say nightly runs): plot each configuration's trend "
                   "and change points (see `mpbench history`) instead of comparing them.")
def report(results: tuple[Path, ...], out: Path | None, fmt: str,
           summary_md: Path | None = None, history: bool = False) -> None:
    """Write a report comparing one or more results directories side by side.

    \b
    Examples:
      mpbench report reports/gpt-20261123-1200 -o report.html
      mpbench report before/ after/ -o upgrade.html      # two result sets side by side
      mpbench report reports/gpt-20261123-1200 --format md -o - >> "$GITHUB_STEP_SUMMARY"
      mpbench report reports/gpt-20261123-1200 --summary-md verdicts.md
      mpbench report --history reports/nightly/ -o history.html
    """
    if history:
        from mpbench.report.history import write_history_report

        if fmt != "html":
            raise UserError("--history: the history page is HTML only; drop --format md (the "
                            "terminal table is `mpbench history`)")
        first = results[0] if results[0].is_dir() else results[0].parent
        path = write_history_report(list(results), out or first / "history.html")
        click.echo(f"history report: {path.resolve()}")
        return
    for r in results:
        if not r.exists():
            raise UserError(f"results not found: {r}; give a directory written by `mpbench run`")
    if out is not None and str(out) == "-":
        import sys
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = write_report(list(results), Path(tmp) / f"report.{fmt}", fmt)
            sys.stdout.write(path.read_text(encoding="utf-8"))
        return
    target = out or (results[0] if results[0].is_dir() else results[0].parent) / f"report.{fmt}"
    path = write_report(list(results), target, fmt)
    click.echo(f"report: {path.resolve()}")
    if summary_md is not None:
        click.echo(f"summary: {write_report(list(results), summary_md, 'md').resolve()}")


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


COMMANDS = [report, export]
