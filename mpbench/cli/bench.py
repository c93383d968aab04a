"""`mpbench bench [SUITE]`: GEMM, alignment and bandwidth micro-benchmarks and the prediction,
with their progress lines and summary tables."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from mpbench.bench.config import load_microbench
from mpbench.bench.rows import AlignmentRow, BandwidthRow, BenchRow, GemmRow, PredictionRow
from mpbench.bench.runner import run_microbench
from mpbench.bench.store import BenchRecord, prepare_out, write_bench
from mpbench.results.env import environment_card
from mpbench.results.output import check_writable_dir
from mpbench.results.store import load_records

# -- progress lines and summary tables -------------------------------------------------------

def _table(title: str, columns: tuple[str, ...], left: tuple[str, ...],
           rows: Iterable[tuple[str, ...]] = ()) -> Table:
    """A table whose `left` columns are left-aligned and the others (numbers) right-aligned."""
    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="left" if col in left else "right")
    for row in rows:
        table.add_row(*row)
    return table


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    """A measured number in `spec`, or '-' where there is none (not measured, or zero)."""
    return f"{value:{spec}}{unit}" if value else "-"


def _status(row: BenchRow) -> str:
    return f"{row.status}: {row.reason}" if row.status != "ok" else "ok"


NOISY_SPREAD = 0.3  # (p90 - p10) / median above this: say so next to the number


def _noisy(spread: float | None) -> str:
    return f", noisy: spread {spread:.0%}" if spread and spread > NOISY_SPREAD else ""


def row_line(bench: str, row: BenchRow) -> str:
    """One progress line per measured case."""
    if isinstance(row, GemmRow):
        dims = f"{row.m}x{row.n}x{row.k}"
        if row.status != "ok":
            return f"{bench} {row.dtype:4} {row.shape} {dims}: {_status(row)}"
        speed = "numerics only" if row.numerics_only else f"{row.tflops:.3g} TFLOP/s"
        err = f", rel err {row.rel_error:.1e}" if row.rel_error is not None else ""
        return f"{bench} {row.dtype:4} {row.shape} {dims}: {speed} ({row.time_ms:.3g} ms x {row.reps}{err}{_noisy(row.spread)})"
    if isinstance(row, BandwidthRow):
        if row.status != "ok":
            return f"{bench} {row.op} {row.dtype}: {_status(row)}"
        return (f"{bench} {row.op} {row.dtype}: {row.gbps:.3g} GB/s, {row.elements_per_s:.3g} "
                f"elements/s ({row.time_ms:.3g} ms x {row.reps}{_noisy(row.spread)})")
    return f"{bench}: {row.status}"


def gemm_table(rows: list[GemmRow]) -> Table:
    table = _table("GEMM TFLOP/s per dtype (best over shapes = this device's measured ceiling)",
                   ("dtype", "best TFLOP/s", "at m x n x k", "speedup vs fp32", "median rel error", "note"),
                   left=("dtype", "note", "at m x n x k"))
    best: dict[str, GemmRow] = {}
    for r in rows:
        if r.status == "ok" and r.tflops and (r.dtype not in best or r.tflops > (best[r.dtype].tflops or 0)):
            best[r.dtype] = r
    fp32 = best.get("fp32")
    for dtype in dict.fromkeys(r.dtype for r in rows):
        mine = [r for r in rows if r.dtype == dtype]
        errs = [r.rel_error for r in mine if r.rel_error is not None]
        err = f"{statistics.median(errs):.1e}" if errs else "-"
        b = best.get(dtype)
        if b is None:
            first = mine[0]
            note = "numerics only (no FP8 hardware)" if first.numerics_only else _status(first)
            table.add_row(dtype, "-", "-", "-", err, note)
            continue
        assert b.tflops is not None
        sp = f"{b.tflops / fp32.tflops:.2f}x" if fp32 and fp32.tflops else "-"
        table.add_row(dtype, f"{b.tflops:.3g}", f"{b.m}x{b.n}x{b.k}", sp, err, b.variant or "")
    return table


def alignment_table(rows: list[AlignmentRow]) -> Table:
    return _table("alignment: K = N off a multiple of 16 (TFLOP/s relative to the aligned size)",
                  ("dtype", "K = N", "multiple of", "TFLOP/s", "vs aligned", "status"),
                  ("dtype", "status"),
                  ((r.dtype, str(r.n), str(r.multiple_of), _fmt(r.tflops, ".3g"),
                    _fmt(r.relative_to_aligned, ".2f"),
                    "numerics only" if r.numerics_only else _status(r)) for r in rows))


def bandwidth_table(rows: list[BandwidthRow]) -> Table:
    return _table("bandwidth-bound ops: 16-bit over 32-bit elements/s (2.00x = bytes halved, "
                  "speed doubled)", ("op", "dtype", "bytes/elem", "GB/s", "elements/s", "vs fp32"),
                  ("op", "dtype"),
                  ((r.op, r.dtype, str(r.bytes_per_element), _fmt(r.gbps, ".3g"),
                    _fmt(r.elements_per_s, ".3g") if r.elements_per_s else _status(r),
                    _fmt(r.vs_fp32, ".2f", "x")) for r in rows))


def prediction_table(rows: list[PredictionRow]) -> Table:
    table = _table("predicted end-to-end speedup (Amdahl: rest unchanged; roofline: rest at the "
                   "bandwidth ratio)",
                   ("dtype vs baseline", "GEMM speedup", "GEMM share", "predicted (Amdahl)",
                    "predicted (roofline)", "measured", "share from"),
                   left=("dtype vs baseline", "share from"))
    for r in rows:
        if r.status != "ok":
            continue
        table.add_row(f"{r.dtype} vs {r.baseline}", f"{r.gemm_speedup:.2f}x",
                      f"{r.gemm_share:.0%}" if r.gemm_share is not None else "-",
                      f"{r.predicted_amdahl:.2f}x", f"{r.predicted_roofline:.2f}x",
                      _fmt(r.measured_speedup, ".2f", "x"), r.share_source)
    return table


def print_bench_summary(console: Console, records: list[BenchRecord]) -> None:
    for rec in records:
        if rec.benchmark == "gemm":
            console.print(gemm_table([GemmRow.model_validate(r) for r in rec.rows]))
        elif rec.benchmark == "alignment":
            console.print(alignment_table([AlignmentRow.model_validate(r) for r in rec.rows]))
        elif rec.benchmark == "bandwidth":
            console.print(bandwidth_table([BandwidthRow.model_validate(r) for r in rec.rows]))
        elif rec.benchmark == "prediction":
            rows = [PredictionRow.model_validate(r) for r in rec.rows]
            skipped = sorted({f"{r.dtype} vs {r.baseline}" for r in rows if r.status != "ok"})
            console.print(prediction_table(rows))
            if skipped:
                console.print(f"no prediction (no timed GEMMs of both): {', '.join(skipped)}",
                              highlight=False, soft_wrap=True)
    # The device notes are the ones every record carries.
    for note in [n for n in (records[0].notes if records else []) if all(n in r.notes for r in records)]:
        console.print(note, highlight=False, soft_wrap=True)


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
