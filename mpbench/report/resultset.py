"""One results directory as the report sees it: its records, bench rows, groups and verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from statistics import median

from mpbench.analysis.claims import ClaimVerdict, evaluate_claims
from mpbench.analysis.compare import Groups
from mpbench.bench.store import BenchRecord, load_bench_dir
from mpbench.results.schema import RunRecord
from mpbench.results.store import load_records


@dataclass
class ResultSet:
    label: str
    path: Path
    records: list[RunRecord]
    bench: list[BenchRecord] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path, label: str | None = None) -> ResultSet:
        records = load_records(path)
        bench = load_bench_dir(path) if path.is_dir() else []
        return cls(label or path.name or str(path), path, records, bench)

    @cached_property
    def verdicts(self) -> list[ClaimVerdict]:
        return evaluate_claims(self.records, self.bench, self.groups)

    @cached_property
    def groups(self) -> Groups[RunRecord]:
        """All runs (any status) by configuration, in run order (analysis/compare.py)."""
        return Groups(self.records)

    @property
    def first(self) -> RunRecord | None:
        return self.records[0] if self.records else None

    @property
    def suite(self) -> str:
        return self.first.suite if self.first else "-"

    @property
    def device_kind(self) -> str:
        return self.first.device_kind if self.first else "cpu"


def median_of(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(median(vals)) if vals else None
