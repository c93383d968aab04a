"""Claim id -> statement, quoted bound and evaluator. Evaluators register with `@claim`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mpbench.analysis.claims.evidence import Evidence
from mpbench.analysis.claims.verdict import Bound, Outcome

APPROX = 0.10
"""Slack for figures the sources give loosely ("~2x", "nearly double", "halves"): 10%."""


@dataclass(frozen=True)
class ClaimSpec:
    claim_id: str
    statement: str
    bound: Bound
    evaluate: Callable[[Evidence, Bound], Outcome]
    needs: str
    """What the claim needs from the suite (shown with 'not measured')."""


CLAIMS: dict[str, ClaimSpec] = {}


def claim(claim_id: str, statement: str, bound: Bound, needs: str
          ) -> Callable[[Callable[[Evidence, Bound], Outcome]], Callable[[Evidence, Bound], Outcome]]:
    def register(fn: Callable[[Evidence, Bound], Outcome]) -> Callable[[Evidence, Bound], Outcome]:
        if claim_id in CLAIMS:
            raise ValueError(f"claim {claim_id!r} registered twice")
        CLAIMS[claim_id] = ClaimSpec(claim_id, statement, bound, fn, needs)
        return fn

    return register


def not_measured(what_to_add: str) -> Outcome:
    return Outcome("not measured", "-", what_to_add)


def not_applicable(missing: str, measured: str = "-") -> Outcome:
    return Outcome("not applicable", measured, missing)
