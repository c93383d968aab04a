"""The records a claim is judged on, grouped once: configurations x precisions, the device."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from mpbench.bench.store import BenchRecord
from mpbench.results.env_card import Capabilities
from mpbench.results.key import ComparisonKey
from mpbench.results.recipe_card import RecipeRole, recipe_card
from mpbench.results.schema import RunRecord

ByPrecision = dict[str, list[RunRecord]]


def with_role(by_p: ByPrecision, role: RecipeRole) -> ByPrecision:
    """The precisions of one configuration whose recipe has `role` (Recipe.role, stored in the
    record), in run order: 'mixed' are the recipes the speed and memory claims are about."""
    return {p: runs for p, runs in by_p.items() if runs and recipe_card(runs[0]).role == role}


def baseline(by_p: ByPrecision) -> list[RunRecord]:
    """The baseline recipe's runs of one configuration (strict FP32), or []."""
    return next(iter(with_role(by_p, "baseline").values()), [])


@dataclass
class Evidence:
    records: list[RunRecord]
    bench: list[BenchRecord] = field(default_factory=list)

    @cached_property
    def ok(self) -> list[RunRecord]:
        return [r for r in self.records if r.status == "ok"]

    @cached_property
    def configs(self) -> dict[ComparisonKey, ByPrecision]:
        """ok runs by comparison group (the record's ConfigKey without precision), then by
        precision (recipe name plus options tag, as the summary shows it)."""
        out: dict[ComparisonKey, ByPrecision] = {}
        for r in self.ok:
            out.setdefault(r.config_key.comparison, {}).setdefault(r.config_key.precision, []).append(r)
        return out

    @cached_property
    def device(self) -> str:
        """'cuda' or 'cpu' (the device of the first record; a results dir has one device)."""
        return self.records[0].device_kind if self.records else "cpu"

    @cached_property
    def caps(self) -> Capabilities:
        r = self.records[0] if self.records else None
        return r.env.capabilities(r.device, r.device_name) if r else Capabilities()

    @cached_property
    def targeted(self) -> set[str]:
        out: set[str] = set()
        for r in self.records:
            out.update(str(c) for c in r.suite_config.get("claims", []))
        return out

    def with_role(self, role: RecipeRole) -> set[str]:
        """The recipes of every record (any status) whose role is `role`."""
        return {r.precision for r in self.records if recipe_card(r).role == role}

    def not_ok(self, precisions: set[str] | tuple[str, ...]) -> list[RunRecord]:
        return [r for r in self.records if r.precision in precisions and r.status != "ok"]

    def why_missing(self, precisions: tuple[str, ...] | set[str]) -> str:
        """'add X to precisions', or the reason the listed runs did not complete."""
        failed = self.not_ok(precisions)
        if failed:
            r = failed[0]
            return f"{r.precision} runs ended {r.status}: {r.reason or 'no reason recorded'}"
        return f"add {' or '.join(sorted(precisions))} to the suite's precisions"
