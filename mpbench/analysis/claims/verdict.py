"""Verdict types and the rule that turns a measured interval and a quoted bound into a verdict."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

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
