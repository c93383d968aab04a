"""The one grouping of runs: by configuration (results/key.py ConfigKey), compared within
their comparison group against the recipe whose role is the baseline.

Every view reads these groups: the summary table, the claims (claims/registry.Evidence), the
report (report/resultset.py), history, convergence, tracking and the gate's matching (which
groups its RunSummary rows the same way, by its own matching key).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from statistics import median
from typing import Generic, Protocol, TypeVar

import numpy as np

from mpbench.analysis.stats import Interval, speedup_ratio
from mpbench.results.key import ComparisonKey, ConfigKey
from mpbench.results.recipe_card import RecipeRole, recipe_card
from mpbench.results.schema import RunRecord


class Run(Protocol):
    """What grouping needs of a run: a RunRecord, or the gate's RunSummary."""

    @property
    def config_key(self) -> ConfigKey: ...
    @property
    def status(self) -> str: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def step_times_ms(self) -> Sequence[float]: ...


R = TypeVar("R", bound=Run)


@dataclass
class Group(Generic[R]):
    """All runs (seeds, repeats) of one configuration."""

    key: ConfigKey
    records: list[R] = field(default_factory=list)

    @property
    def model(self) -> str:
        return self.key.model

    @property
    def recipe_id(self) -> str:
        """The recipe name plus its options tag (ConfigKey.recipe_id)."""
        return self.key.recipe_id

    @property
    def batch_size(self) -> int:
        return self.key.batch_size

    @property
    def seq_len(self) -> int:
        return self.key.seq_len

    @property
    def variant(self) -> str:
        """Parallel combination (e.g. ddp-bf16comm-w2), empty for single-process runs."""
        return self.key.parallel.tag if self.key.parallel is not None else ""

    @property
    def setting(self) -> str:
        """Batch, sequence length and every other setting of the key: 'b8×t64 lr=0.01 ckpt'."""
        label = self.key.comparison.setting_label
        return label.removesuffix(" " + self.variant) if self.variant else label

    @property
    def ok(self) -> list[R]:
        return [r for r in self.records if r.status == "ok"]

    @property
    def status(self) -> str:
        statuses = sorted({r.status for r in self.records})
        return statuses[0] if len(statuses) == 1 else "mixed: " + ", ".join(statuses)

    @property
    def reason(self) -> str | None:
        reasons = [r.reason for r in self.records if r.reason]
        return reasons[0] if reasons else None

    @property
    def run_step_times_ms(self) -> list[list[float]]:
        """Step times per ok run: the unit of replication for every speedup."""
        return [list(r.step_times_ms) for r in self.ok if r.step_times_ms]

    @property
    def step_ms(self) -> float | None:
        """Median of the ok runs' median step times (the statistic history and the gate use)."""
        return run_median_ms(self.run_step_times_ms)

    def median_of(self, attr: str) -> float | None:
        """Median of a run attribute over the ok runs that have it."""
        values = [v for r in self.ok if (v := getattr(r, attr)) is not None]
        return float(median(values)) if values else None

    # What the recipe says about itself (Recipe.role), stored in each record.
    @property
    def family(self: Group[RunRecord]) -> str:
        return recipe_card(self.records[0]).family or ""

    @property
    def role(self: Group[RunRecord]) -> RecipeRole:
        return recipe_card(self.records[0]).role

    @property
    def role_note(self: Group[RunRecord]) -> str:
        return recipe_card(self.records[0]).role_note

    @property
    def numerics_only(self: Group[RunRecord]) -> bool:
        return recipe_card(self.records[0]).numerics_only

    @property
    def peak_memory_bytes(self: Group[RunRecord]) -> float | None:
        values = [r.memory.peak_bytes for r in self.ok if r.memory and r.memory.peak_bytes is not None]
        return float(median(values)) if values else None


def run_median_ms(runs: Iterable[Sequence[float]]) -> float | None:
    """Median of per-run median step times."""
    medians = [float(np.median(t)) for t in runs if len(t)]
    return float(median(medians)) if medians else None


def _config_key(r: Run) -> Hashable:
    return r.config_key


class Groups(Generic[R]):
    """Runs by configuration, groups in first-seen order, runs in run order.

    `by` picks another matching key (the gate pairs configurations with or without the
    device and profile); the comparison and baseline lookups assume the default, ConfigKey.
    """

    def __init__(self, runs: Iterable[R], by: Callable[[R], Hashable] = _config_key) -> None:
        self._groups: dict[Hashable, Group[R]] = {}
        for r in runs:
            self._groups.setdefault(by(r), Group(r.config_key)).records.append(r)

    def __iter__(self) -> Iterator[Group[R]]:
        return iter(self._groups.values())

    def __len__(self) -> int:
        return len(self._groups)

    def items(self) -> Iterable[tuple[Hashable, Group[R]]]:
        return self._groups.items()

    def get(self, key: Hashable) -> Group[R] | None:
        return self._groups.get(key)

    def ok(self, key: Hashable) -> list[R]:
        """The ok runs of configuration `key` ([] when there is none)."""
        group = self._groups.get(key)
        return group.ok if group is not None else []

    def comparisons(self) -> dict[ComparisonKey, list[Group[R]]]:
        """Groups by comparison group (the key without its recipe id), first-seen order."""
        out: dict[ComparisonKey, list[Group[R]]] = {}
        for g in self:
            out.setdefault(g.key.comparison, []).append(g)
        return out

    def comparison(self, key: ComparisonKey) -> list[Group[R]]:
        return [g for g in self if g.key.comparison == key]

    def baseline(self: Groups[RunRecord],
                 of: Group[RunRecord] | ComparisonKey) -> Group[RunRecord] | None:
        """The group of the recipe whose role is the baseline (Recipe.role) in the comparison
        group of `of` (None without one)."""
        key = of.key.comparison if isinstance(of, Group) else of
        return next((g for g in self.comparison(key) if g.role == "baseline"), None)

    def baseline_runs(self: Groups[RunRecord],
                      of: Group[RunRecord] | ComparisonKey) -> list[RunRecord]:
        """The ok runs of that baseline group, or []."""
        base = self.baseline(of)
        return base.ok if base is not None else []


def speedup(group: Group[RunRecord], base: Group[RunRecord] | None,
            confidence: float = 0.95) -> Interval | None:
    """Throughput of group over base from run-level step times (analysis/stats.py):
    no interval with fewer than 2 runs per side."""
    if base is None:
        return None
    return speedup_ratio(base.run_step_times_ms, group.run_step_times_ms, confidence)
