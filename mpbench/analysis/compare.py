"""Group runs by configuration and compare each precision with the fp32 baseline."""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import median

from mpbench.analysis.runstats import speedup_ratio
from mpbench.analysis.stats import Interval
from mpbench.results.key import ConfigKey
from mpbench.results.recipe_card import RecipeRole, recipe_card
from mpbench.results.schema import RunRecord


@dataclass
class Group:
    """All runs (seeds, repeats) of one configuration (results/key.py ConfigKey)."""

    key: ConfigKey
    records: list[RunRecord] = field(default_factory=list)

    @property
    def model(self) -> str:
        return self.key.model

    @property
    def precision(self) -> str:
        """The recipe name, plus the run id's options tag when the suite set options."""
        return self.key.precision

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
    def ok(self) -> list[RunRecord]:
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
    def family(self) -> str:
        return recipe_card(self.records[0]).family or ""

    @property
    def role(self) -> RecipeRole:
        return recipe_card(self.records[0]).role

    @property
    def role_note(self) -> str:
        return recipe_card(self.records[0]).role_note

    @property
    def numerics_only(self) -> bool:
        return recipe_card(self.records[0]).numerics_only

    @property
    def step_times_ms(self) -> list[float]:
        return [t for r in self.ok for t in r.step_times_ms]

    @property
    def run_step_times_ms(self) -> list[list[float]]:
        """Step times per run: the unit of replication for every speedup."""
        return [list(r.step_times_ms) for r in self.ok if r.step_times_ms]

    def median_of(self, attr: str) -> float | None:
        values = [getattr(r, attr) for r in self.ok if getattr(r, attr) is not None]
        return float(median(values)) if values else None

    @property
    def peak_memory_bytes(self) -> float | None:
        values = [r.memory.peak_bytes for r in self.ok if r.memory and r.memory.peak_bytes is not None]
        return float(median(values)) if values else None


def group_runs(records: list[RunRecord]) -> list[Group]:
    """Runs by their configuration key, in first-seen order."""
    groups: dict[ConfigKey, Group] = {}
    for r in records:
        groups.setdefault(r.config_key, Group(r.config_key)).records.append(r)
    return list(groups.values())


def baseline_for(group: Group, groups: list[Group]) -> Group | None:
    """The baseline recipe's group (Recipe.role) of `group`'s comparison group."""
    want = group.key.comparison
    return next((g for g in groups if g.key.comparison == want and g.role == "baseline"), None)


def speedup(group: Group, base: Group | None, confidence: float = 0.95) -> Interval | None:
    """Throughput of group over base from run-level step times (analysis/runstats.py):
    no interval with fewer than 2 runs per side."""
    if base is None:
        return None
    return speedup_ratio(base.run_step_times_ms, group.run_step_times_ms, confidence)
