"""Bench records (written by `mpbench bench`) as analysis reads them: typed records and rows."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from mpbench.bench.rows import ROW_MODELS, BenchRow
from mpbench.bench.store import BenchRecord, load_bench

R = TypeVar("R", bound=BenchRow)


def load_bench_dir(results_dir: Path) -> list[BenchRecord]:
    """The bench records of a results directory; [] when it has none (UserError if corrupt)."""
    if not (results_dir / "bench").is_dir():
        return []
    return load_bench(results_dir)


def bench_rows(bench: list[BenchRecord], model: type[R], ok_only: bool = True) -> list[R]:
    """The rows of the benchmark whose row model is `model` (GemmRow: the gemm benchmark's),
    ok ones only unless `ok_only` is False."""
    name = next(k for k, v in ROW_MODELS.items() if v is model)
    return [row for b in bench if b.benchmark == name for row in b.rows
            if isinstance(row, model) and (not ok_only or row.status == "ok")]
