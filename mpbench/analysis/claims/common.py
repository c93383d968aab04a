"""Helpers the claim evaluators share: rows from estimates, the headline row, the summary."""

from __future__ import annotations

from mpbench.analysis.claims.verdict import Bound, ClaimOutcome, ClaimRow, Verdict, combine, judge
from mpbench.analysis.stats import Interval

_SEVERITY: dict[Verdict | None, int] = {"fails": 0, "inconclusive": 1, "holds": 2}


def judged_row(label: str, est: Interval, bound: Bound, unit: str = "×", counted: bool = True,
               note: str = "") -> ClaimRow:
    verdict, why = judge(est.value, est.low, est.high, bound)
    notes = "; ".join(x for x in (note, est.basis, why) if x)
    return ClaimRow(label, verdict, notes, unit, counted, value=est.value, low=est.low,
                    high=est.high, n=est.n, paired=est.paired)


def headline(rows: list[ClaimRow], bound: Bound) -> ClaimRow | None:
    """The row that decides: the worst verdict, and within it the value nearest failing."""
    counted = [r for r in rows if r.counted and r.verdict in _SEVERITY]
    if not counted:
        return None
    lower_is_worse = bound.kind != "at_most"

    def key(r: ClaimRow) -> tuple[int, float]:
        if r.value is None:  # nothing to show (e.g. never reached the target): worst of its kind
            return _SEVERITY[r.verdict], float("-inf")
        return _SEVERITY[r.verdict], r.value if lower_is_worse else -r.value

    return min(counted, key=key)


def outcome_from_rows(rows: list[ClaimRow], bound: Bound, what: str, note: str = "") -> ClaimOutcome:
    """Combine judged rows: fails if any counted row fails, holds only if all hold."""
    counted = [r for r in rows if r.counted and r.verdict is not None]
    verdict = combine([r.verdict for r in counted if r.verdict is not None])
    head = headline(rows, bound)
    if head is None:
        return ClaimOutcome("inconclusive", "-", f"no counted {what}", rows=rows)
    more = len(counted) - 1
    measured = f"{head.text} ({head.label})" if head.value is not None else head.label
    measured += f" (+{more} more)" if more > 0 else ""
    tally = ", ".join(f"{sum(r.verdict == v for r in counted)} {v}"
                      for v in ("holds", "fails", "inconclusive")
                      if any(r.verdict == v for r in counted))
    reason = f"{tally} of {len(counted)} {what} against {bound.text}"
    if head.note:
        reason += f"; deciding row: {head.note}"
    if note:
        reason += f". {note}"
    return ClaimOutcome(verdict, measured, reason, rows, **head.interval())
