"""The claims' registry: claim id -> statement, quoted bound and evaluator (evaluators register
with `@claim`); the Evidence every evaluator is handed (the records, grouped once by
analysis/compare.Groups, and the device); and the articles the bounds cite (SOURCES).

SOURCES: the ids a Bound's `sources` names ("003"), each with its title and where a reader
finds it. Shipped with mpbench so that a report's source ids point at something its reader
has; the report renders this table and links each id to its row. Titles are the articles' own
headings; addresses are where each article is published (found by its title and publisher).
Where no address could be established, `url` is None and `note` says what identifies the
article instead: the report never invents an address.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from pydantic import BaseModel

from mpbench.analysis.claims.verdict import Bound, ClaimOutcome
from mpbench.analysis.compare import Group, Groups
from mpbench.bench.store import BenchRecord
from mpbench.results.env_card import Capabilities
from mpbench.results.key import ComparisonKey
from mpbench.results.recipe_card import RecipeRole, recipe_card
from mpbench.results.schema import RunRecord

APPROX = 0.10
"""Slack for figures the sources give loosely ("~2x", "nearly double", "halves"): 10%."""


class Source(BaseModel):
    id: str
    title: str
    publisher: str | None = None
    date: str | None = None
    url: str | None = None
    note: str | None = None


SOURCES: dict[str, Source] = {s.id: s for s in (
    Source(id="000", title="Mixed Precision Training In LLMs", publisher="Avichala (blog)",
           date="2025-11-11", url="https://avichala.com/blog/mixed-precision-training-in-llms"),
    Source(id="001", title="The Power of Mixed Precision Training in LLM Training",
           publisher="Metric Coders", date="2025",
           note="address not established; find it by title on the publisher's site"),
    Source(id="002", title="What Is Mixed Precision Training?",
           note="an explainer with a one-line summary, prerequisites and further reading "
                "(Micikevicius et al., NVIDIA); publisher and address not established"),
    Source(id="003", title="What is Mixed Precision Training?",
           publisher="Pertama Partners, AI Glossary (LLM Training & Alignment)",
           url="https://www.pertamapartners.com/glossary/mixed-precision-training"),
    Source(id="004", title="What is Mixed Precision Training? Meaning and Definition",
           publisher="AI Knowledge Base (Generative AI and LLM)",
           url="https://ai-knowledge-base.com/?p=344"),
)}


def source_anchor(source_id: str) -> str:
    """The HTML id of a source's row in the report's sources table."""
    return f"source-{source_id}"


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
