"""Verdict types, the rule that turns a measured interval and a quoted bound into a verdict,
and the outcomes evaluators build from them (judged rows, the headline row, the summary)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from mpbench.analysis.stats import Interval

Verdict = Literal["holds", "fails", "inconclusive", "not applicable", "not measured"]
VERDICTS: tuple[Verdict, ...] = ("holds", "fails", "inconclusive", "not applicable", "not measured")

# With no interval (one sample per side), a point estimate decides only when it is further
# than this share away from the bound; closer than that, more runs are needed.
POINT_MARGIN = 0.10


@dataclass(frozen=True)
class Bound:
    """The figure a source quotes and how mpbench reads it as a testable bound."""

    kind: Literal["at_least", "at_most", "within", "condition"]
    low: float | None
    high: float | None
    unit: str
    sources: tuple[str, ...]
    """Seed document ids (../shared/seeds/NNN_*.txt)."""
    figure: str
    """The quoted figure, as short as the source puts it."""
    reading: str
    """How the figure becomes the bound (one line, shown in the report)."""

    @property
    def text(self) -> str:
        u = self.unit
        if self.kind == "at_least":
            return f"≥ {fmt(self.low)}{u}"
        if self.kind == "at_most":
            return f"≤ {fmt(self.high)}{u}"
        if self.kind == "within":
            return f"{fmt(self.low)}{u} to {fmt(self.high)}{u}"
        return self.reading

    @property
    def short(self) -> str:
        """The numeric bound, or the quoted figure where the bound is a condition."""
        return f"“{self.figure}”" if self.kind == "condition" else self.text

    @property
    def source_text(self) -> str:
        return ", ".join(self.sources)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "text": self.text}


@dataclass(kw_only=True)
class Shown:
    """The figures of an analysis.stats.Interval as a claim row or verdict shows and stores
    them (flat: value, 95% bounds or None, samples per side, paired seed by seed)."""

    value: float | None = None
    low: float | None = None
    high: float | None = None
    n: int = 0
    paired: bool = False

    def interval(self) -> dict[str, Any]:
        """These fields, to pass on (ClaimOutcome(..., **row.interval()))."""
        return {f.name: getattr(self, f.name) for f in fields(Shown)}


@dataclass
class ClaimRow(Shown):
    """One comparison behind a verdict (a model configuration, a GEMM shape, a precision)."""

    label: str
    verdict: Verdict | None = None
    note: str = ""
    unit: str = "×"
    counted: bool = True
    """False for rows shown for context only (emulated FP8, a deliberately broken recipe)."""

    @property
    def text(self) -> str:
        return fmt_interval(self.value, self.low, self.high, self.unit)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "text": self.text}


@dataclass
class ClaimOutcome(Shown):
    """What a claim's evaluator found (its headline figures); the engine adds the claim's id,
    statement and bound."""

    verdict: Verdict
    measured: str
    """The headline number(s), formatted; '-' when nothing was measured."""
    reason: str
    """Why this verdict: the missing capability, what the suite must add, or the comparison."""
    rows: list[ClaimRow] = field(default_factory=list)


@dataclass(kw_only=True)
class ClaimVerdict(ClaimOutcome):
    """A claim's outcome with what it was judged against."""

    claim_id: str
    statement: str
    bound: Bound
    confidence: float = 0.95
    targeted: bool = False
    """True when the suite lists this claim under `claims:`."""

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("bound", "rows")}
        d["bound"] = self.bound.as_dict()
        d["rows"] = [r.as_dict() for r in self.rows]
        return d


def fmt(x: float | None, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}" if abs(x) >= 0.01 or x == 0 else f"{x:.2g}"


def has_interval(low: float | None, high: float | None) -> bool:
    return low is not None and high is not None and not (math.isnan(low) or math.isnan(high))


def fmt_interval(value: float | None, low: float | None, high: float | None, unit: str = "×") -> str:
    if value is None:
        return "-"
    if has_interval(low, high):
        return f"{fmt(value)}{unit} [{fmt(low)}, {fmt(high)}]"
    return f"{fmt(value)}{unit}"


def judge(value: float | None, low: float | None, high: float | None, bound: Bound
          ) -> tuple[Verdict, str]:
    """Compare a measured value and its interval with a bound (kinds at_least/at_most/within).

    Without an interval (one sample per side) the point counts as the interval
    value ± POINT_MARGIN, so a point near the bound stays inconclusive.
    """
    if value is None or math.isnan(value):
        return "inconclusive", "no value"
    note = ""
    if has_interval(low, high):
        assert low is not None and high is not None
        lo, hi = low, high
    else:
        ends = (value * (1 - POINT_MARGIN), value * (1 + POINT_MARGIN))
        lo, hi = min(ends), max(ends)
        note = f"no interval (one sample per side): the point ±{POINT_MARGIN:.0%} is judged"
    if bound.kind == "at_least":
        assert bound.low is not None
        verdict: Verdict = ("holds" if lo >= bound.low else "fails" if hi < bound.low
                            else "inconclusive")
    elif bound.kind == "at_most":
        assert bound.high is not None
        verdict = "holds" if hi <= bound.high else "fails" if lo > bound.high else "inconclusive"
    elif bound.kind == "within":
        assert bound.low is not None and bound.high is not None
        if lo >= bound.low and hi <= bound.high:
            verdict = "holds"
        elif hi < bound.low or lo > bound.high:
            verdict = "fails"
        else:
            verdict = "inconclusive"
    else:
        raise ValueError(f"judge() does not handle {bound.kind!r} bounds")
    if verdict == "inconclusive" and not note:
        note = "the interval straddles the bound: more runs needed"
    return verdict, note


def combine(verdicts: list[Verdict]) -> Verdict:
    """A claim fails where any counted comparison fails; it holds only where all hold."""
    counted = [v for v in verdicts if v in ("holds", "fails", "inconclusive")]
    if not counted:
        return "inconclusive"
    if "fails" in counted:
        return "fails"
    if all(v == "holds" for v in counted):
        return "holds"
    return "inconclusive"


def not_measured(what_to_add: str) -> ClaimOutcome:
    return ClaimOutcome("not measured", "-", what_to_add)


def not_applicable(missing: str, measured: str = "-") -> ClaimOutcome:
    return ClaimOutcome("not applicable", measured, missing)


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
