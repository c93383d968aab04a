"""Group runs by configuration and compare each precision with the fp32 baseline."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from statistics import median

from mpbench.analysis.runstats import RunRatio, speedup_ratio
from mpbench.results.schema import RunRecord


@dataclass
class Group:
    """All repeats (seeds) of one model x precision x batch x seq-len configuration."""

    model: str
    precision: str
    batch_size: int
    seq_len: int
    variant: str = ""
    """Parallel combination (e.g. ddp-bf16comm-w2), empty for single-process runs."""
    setting: str = ""
    """The run id's train part (e.g. b8-t64-ckpt): separates matrix variants."""
    records: list[RunRecord] = field(default_factory=list)

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
        return str(self.records[0].recipe.get("family", ""))

    @property
    def numerics_only(self) -> bool:
        return bool(self.records[0].recipe.get("numerics_only", False))

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


def precision_label(record: RunRecord) -> str:
    """The recipe name, plus the options tag of the run id when the suite set options."""
    parts = record.run_id.split("__")
    return parts[1] if len(parts) >= 4 and parts[1].startswith(record.precision) else record.precision


def variant_of(record: RunRecord) -> str:
    parts = record.run_id.split("__")
    return parts[3] if len(parts) >= 5 else ""


def model_label(record: RunRecord) -> str:
    """The model name with any matrix tag of the run id (e.g. gpt-tiny-lr0.01)."""
    head = record.run_id.split("__")[0]
    return head if head.startswith(record.model) else record.model


def setting_of(record: RunRecord) -> str:
    parts = record.run_id.split("__")
    return parts[2] if len(parts) >= 4 else ""


def group_runs(records: list[RunRecord]) -> list[Group]:
    groups: dict[tuple[str, str, int, int, str, str], Group] = {}
    for r in records:
        key = (model_label(r), precision_label(r), r.batch_size, r.seq_len, variant_of(r),
               setting_of(r))
        if key not in groups:
            groups[key] = Group(*key)
        groups[key].records.append(r)
    return list(groups.values())


def baseline_for(group: Group, groups: list[Group], baseline: str = "fp32") -> Group | None:
    for g in groups:
        if (g.model, g.setting, g.variant, g.precision) == (
            group.model, group.setting, group.variant, baseline
        ):
            return g
    return None


def speedup(group: Group, base: Group | None, confidence: float = 0.95) -> RunRatio | None:
    """Throughput of group over base from run-level step times (analysis/runstats.py):
    no interval with fewer than 2 runs per side."""
    if base is None:
        return None
    return speedup_ratio(base.run_step_times_ms, group.run_step_times_ms, confidence)


def by_model(groups: list[Group]) -> dict[str, list[Group]]:
    out: dict[str, list[Group]] = defaultdict(list)
    for g in groups:
        out[g.model].append(g)
    return dict(out)
