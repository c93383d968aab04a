"""The claims engine, shared by the report and the gate: a verdict for every id in CLAIMS.md.

`evaluate_claims(records, bench)` returns one ClaimVerdict per claim id, in CLAIMS.md order.
Each claim's bound (the quoted figure, its source and how it is read) lives next to its
evaluator in the modules below.
"""

from __future__ import annotations

# Importing the evaluator modules registers them.
from mpbench.analysis.claims import kernels, memory, numerics, platform, speed
from mpbench.analysis.claims.registry import CLAIMS, ClaimSpec, Evidence
from mpbench.analysis.claims.verdict import VERDICTS, Bound, ClaimRow, ClaimVerdict, Verdict
from mpbench.analysis.compare import Groups
from mpbench.bench.store import BenchRecord
from mpbench.config.claim_ids import CLAIM_IDS
from mpbench.results.schema import RunRecord

__all__ = [
    "CLAIMS",
    "VERDICTS",
    "Bound",
    "ClaimRow",
    "ClaimSpec",
    "ClaimVerdict",
    "Verdict",
    "evaluate_claim",
    "evaluate_claims",
]
_MODULES = (kernels, memory, numerics, platform, speed)


def evaluate_claim(spec: ClaimSpec, ev: Evidence) -> ClaimVerdict:
    if not ev.records:
        return ClaimVerdict("not measured", "-", "no run records", claim_id=spec.claim_id,
                            statement=spec.statement, bound=spec.bound)
    out = spec.evaluate(ev, spec.bound)
    return ClaimVerdict(
        out.verdict, out.measured, out.reason, out.rows, **out.interval(), claim_id=spec.claim_id, statement=spec.statement, bound=spec.bound,
        targeted=spec.claim_id in ev.targeted,
    )


def evaluate_claims(records: list[RunRecord], bench: list[BenchRecord] | None = None,
                    groups: Groups[RunRecord] | None = None) -> list[ClaimVerdict]:
    """A verdict for every claim id of CLAIMS.md from one device's run (and bench) records
    (`groups`: the records' groups when the caller holds them)."""
    ev = Evidence(records, list(bench or []), groups)
    missing = [c for c in CLAIM_IDS if c not in CLAIMS]
    if missing:
        raise RuntimeError(f"claims without an evaluator: {', '.join(missing)}")
    return [evaluate_claim(CLAIMS[c], ev) for c in CLAIM_IDS]
