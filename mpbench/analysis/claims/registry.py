"""Claim id -> statement, quoted bound and evaluator. Evaluators register with `@claim`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mpbench.analysis.claims.evidence import Evidence
from mpbench.analysis.claims.verdict import Bound, ClaimOutcome

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


def not_measured(what_to_add: str) -> ClaimOutcome:
    return ClaimOutcome("not measured", "-", what_to_add)


def not_applicable(missing: str, measured: str = "-") -> ClaimOutcome:
    return ClaimOutcome("not applicable", measured, missing)
