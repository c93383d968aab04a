"""Claim id -> statement, quoted bound and evaluator (evaluators register with `@claim`), and
the Evidence every evaluator is handed: the records, grouped once (analysis/compare.Groups),
and the device."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from mpbench.analysis.claims.verdict import Bound, ClaimOutcome
from mpbench.analysis.compare import Group, Groups
from mpbench.bench.store import BenchRecord
from mpbench.results.env_card import Capabilities
from mpbench.results.key import ComparisonKey
from mpbench.results.recipe_card import RecipeRole, recipe_card
from mpbench.results.schema import RunRecord

APPROX = 0.10
"""Slack for figures the sources give loosely ("~2x", "nearly double", "halves"): 10%."""


@dataclass(frozen=True)
class ClaimSpec:
    claim_id: str
    statement: str
    bound: Bound
    evaluate: Callable[[Evidence, Bound], ClaimOutcome]
    needs: str
    """What the claim needs from the suite (shown with 'not measured')."""


CLAIMS: dict[str, ClaimSpec] = {}


def claim(claim_id: str, statement: str, bound: Bound, needs: str
          ) -> Callable[[Callable[[Evidence, Bound], ClaimOutcome]], Callable[[Evidence, Bound], ClaimOutcome]]:
    def register(fn: Callable[[Evidence, Bound], ClaimOutcome]) -> Callable[[Evidence, Bound], ClaimOutcome]:
        if claim_id in CLAIMS:
            raise ValueError(f"claim {claim_id!r} registered twice")
        CLAIMS[claim_id] = ClaimSpec(claim_id, statement, bound, fn, needs)
        return fn

    return register


@dataclass
class Evidence:
    records: list[RunRecord]
    bench: list[BenchRecord] = field(default_factory=list)
    grouped: Groups[RunRecord] | None = None
    """The records' groups when the caller holds them already (the report's ResultSet)."""

    @cached_property
    def groups(self) -> Groups[RunRecord]:
        return self.grouped if self.grouped is not None else Groups(self.records)

    @cached_property
    def ok(self) -> list[RunRecord]:
        return [r for r in self.records if r.status == "ok"]

    @cached_property
    def compared(self) -> dict[ComparisonKey, list[Group[RunRecord]]]:
        """The configurations with ok runs, by comparison group: what the claims compare."""
        out: dict[ComparisonKey, list[Group[RunRecord]]] = {}
        for key, groups in self.groups.comparisons().items():
            if done := [g for g in groups if g.ok]:
                out[key] = done
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
