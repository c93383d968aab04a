"""`mpbench bench [SUITE]`: GEMM, alignment and bandwidth micro-benchmarks and the prediction."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click
from rich.console import Console

from mpbench.bench.config import load_microbench
from mpbench.bench.rows import BenchRow
from mpbench.bench.runner import run_microbench
from mpbench.bench.store import BenchRecord, prepare_out, write_bench
from mpbench.cli.bench_summary import print_bench_summary, row_line
from mpbench.results.env import environment_card
from mpbench.results.output import check_writable_dir
from mpbench.results.store import load_records

DEFAULT_SUITE = Path("suites/microbench.yaml")


def default_out(suite_name: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in suite_name)
    return Path("reports") / f"{safe}-{stamp}"


@click.command("bench")
@click.argument("suite_file", metavar="[SUITE]", required=False, default=DEFAULT_SUITE,
                type=click.Path(path_type=Path))
@click.option("--out", "-o", type=click.Path(path_type=Path),
              help="Results directory (default: reports/<suite>-<time>); an existing training "
                   "results directory gains a bench/ folder.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="Where to measure; the suite's matching device profile is used.")
@click.option("--quick", is_flag=True, help="Shorter timing, one square size, one model's shapes.")
@click.option("--quiet", "-q", is_flag=True,
              help="One line per benchmark instead of one per measured row.")
@click.option("--runs", "runs_dir", type=click.Path(path_type=Path),
              help="Training results (from `mpbench run`) to predict next to: GEMM shares from "
                   "their profiles, measured speedups from their tokens/s.")
def bench(suite_file: Path, out: Path | None, device: str, quick: bool, runs_dir: Path | None,
          quiet: bool = False) -> None:
    """Measure GEMM TFLOP/s per dtype, the alignment penalty and 16-bit bandwidth gains.

    \b
    Examples:
      mpbench bench                              # suites/microbench.yaml
      mpbench bench --quick --device cpu
      mpbench bench -o reports/gpt-run --runs reports/gpt-run   # predicted next to measured
    """
    from mpbench.train import resolve_device

    dev = resolve_device(device)
    suite = load_microbench(suite_file, dev.type)
    if quick:
        suite = suite.quick()
    runs = load_records(runs_dir) if runs_dir is not None else None
    out = out or default_out(suite.name)
    check_writable_dir(out)
    prepare_out(out, suite.name, suite.model_dump(mode="json"),
                suite_file.read_text(encoding="utf-8"))

    console = Console() if Console().is_terminal else Console(width=150)
    env = environment_card()
    where = env.device_name(dev.type)
    console.print(f"microbench {suite.name} (profile {suite.profile}{', quick' if quick else ''}) "
                  f"on {dev} ({where}) -> {out}", highlight=False)
    records: list[BenchRecord] = []
    def on_row(benchmark: str, row: BenchRow) -> None:
        console.print(row_line(benchmark, row), highlight=False)

    for record in run_microbench(suite, dev, env, quick, runs, None if quiet else on_row):
        write_bench(out, record)
        records.append(record)
        if quiet:
            console.print(f"{record.benchmark}: {len(record.rows)} rows", highlight=False)
    print_bench_summary(console, records)
    console.print(f"results: {out.resolve()}", highlight=False, soft_wrap=True)


COMMANDS = [bench]
