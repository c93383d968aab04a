"""One results directory as the report sees it: its records, bench rows, groups and verdicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from statistics import median

from mpbench.analysis.bench_view import load_bench_dir
from mpbench.analysis.claims import ClaimVerdict, evaluate_claims
from mpbench.bench.store import BenchRecord
from mpbench.results.key import ConfigKey
from mpbench.results.recipe_card import recipe_card
from mpbench.results.schema import RunRecord
from mpbench.results.store import load_records

GroupKey = ConfigKey
"""The record's configuration key (results/key.py): comparison group plus precision."""


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
        return evaluate_claims(self.records, self.bench)

    @cached_property
    def groups(self) -> dict[GroupKey, list[RunRecord]]:
        """All runs (any status) by configuration and precision, in run order."""
        out: dict[GroupKey, list[RunRecord]] = {}
        for r in self.records:
            out.setdefault(r.config_key, []).append(r)
        return out

    def ok(self, key: GroupKey) -> list[RunRecord]:
        return [r for r in self.groups.get(key, []) if r.status == "ok"]

    def baseline(self, key: GroupKey, precision: str | None = None) -> list[RunRecord]:
        """The ok runs of `precision` in `key`'s comparison group; by default of the recipe
        whose role is the baseline (Recipe.role)."""
        if precision is not None:
            return self.ok(key.comparison.with_precision(precision))
        found = next((k for k in self.groups if k.comparison == key.comparison
                      and self.is_baseline(k)), None)
        return self.ok(found) if found is not None else []

    def is_baseline(self, key: GroupKey) -> bool:
        runs = self.groups.get(key, [])
        return bool(runs) and recipe_card(runs[0]).role == "baseline"

    @property
    def first(self) -> RunRecord | None:
        return self.records[0] if self.records else None

    @property
    def suite(self) -> str:
        return self.first.suite if self.first else "-"

    @property
    def device_kind(self) -> str:
        return self.first.device_kind if self.first else "cpu"


def group_label(key: GroupKey) -> str:
    return key.label


def median_of(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(median(vals)) if vals else None
