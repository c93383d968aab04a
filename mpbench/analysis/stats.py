"""The one interval type, and the bootstrap ratio of medians (scipy) behind many of them."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Interval:
    """The one interval type: a measured figure (a ratio new / base, or a median of cases)
    with its confidence interval, read alike by claims, report, gate, summary and exports."""

    value: float
    low: float | None = None
    high: float | None = None
    """None: no interval (too few samples per side, or not computed)."""
    n_base: int = 0
    n_new: int = 0
    """Samples per side: runs, seeds when paired, pooled steps, or cases (shapes, ops)."""
    paired: bool = False
    basis: str = ""
    """How the value and interval were formed, for the method notes."""
    confidence: float = 0.95

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    @property
    def n(self) -> int:
        """Samples on the smaller side."""
        return min(self.n_base, self.n_new)

    def inverted(self) -> Interval:
        """The same comparison as 1/value (throughput from step time)."""
        low = 1.0 / self.high if self.high is not None else None
        high = 1.0 / self.low if self.low is not None else None
        return dataclasses.replace(self, value=1.0 / self.value, low=low, high=high)

    def bounds_text(self, fmt: Callable[[float], str]) -> str:
        """'low .. high', each written by `fmt`, or 'no interval'."""
        if self.low is None or self.high is None:
            return "no interval"
        return f"{fmt(self.low)} .. {fmt(self.high)}"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def finite_or_none(low: float, high: float) -> tuple[float | None, float | None]:
    """A bootstrap's bounds, None where it gave none (NaN)."""
    if math.isfinite(low) and math.isfinite(high):
        return low, high
    return None, None


def median_ratio(
    a: list[float] | np.ndarray,
    b: list[float] | np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Interval | None:
    """median(b)/median(a) with a percentile bootstrap interval (independent samples); no
    interval with fewer than 2 samples a side."""
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if xa.size == 0 or xb.size == 0:
        return None
    value = float(np.median(xb) / np.median(xa))
    if xa.size < 2 or xb.size < 2:
        return Interval(value, None, None, int(xa.size), int(xb.size), confidence=confidence)

    def stat(sa: np.ndarray, sb: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.median(sb, axis=axis) / np.median(sa, axis=axis)

    from scipy import stats as sps  # lazily: the CLI's light commands read Interval only

    res = sps.bootstrap(
        (xa, xb), stat, vectorized=True, paired=False, n_resamples=n_resamples,
        confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed),
    )
    low, high = finite_or_none(float(res.confidence_interval.low),
                               float(res.confidence_interval.high))
    return Interval(value, low, high, int(xa.size), int(xb.size), confidence=confidence)


def spread_warning(times_ms: list[float], threshold: float = 0.10) -> str | None:
    """pyperf-style warning when the step times are too noisy to compare finely."""
    if len(times_ms) < 3:
        return f"only {len(times_ms)} timed steps: intervals are wide"
    a = np.asarray(times_ms, dtype=float)
    cv = float(a.std(ddof=1) / a.mean())
    if cv > threshold:
        return f"step-time spread is {cv:.0%} of the mean (over {threshold:.0%}): results are noisy"
    return None
