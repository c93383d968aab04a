"""Summary statistics and bootstrap intervals (scipy), used everywhere a number is compared."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps


@dataclass(frozen=True)
class Ratio:
    """value = statistic(b) / statistic(a), with a confidence interval."""

    value: float
    low: float
    high: float
    confidence: float
    n_a: int
    n_b: int

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "low": self.low, "high": self.high,
                "confidence": self.confidence, "n_a": self.n_a, "n_b": self.n_b}


def median_ratio(
    a: list[float] | np.ndarray,
    b: list[float] | np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> Ratio | None:
    """median(b)/median(a) with a percentile bootstrap interval (independent samples)."""
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if xa.size == 0 or xb.size == 0:
        return None
    value = float(np.median(xb) / np.median(xa))
    if xa.size < 2 or xb.size < 2:
        return Ratio(value, float("nan"), float("nan"), confidence, int(xa.size), int(xb.size))

    def stat(sa: np.ndarray, sb: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.median(sb, axis=axis) / np.median(sa, axis=axis)

    res = sps.bootstrap(
        (xa, xb), stat, vectorized=True, paired=False, n_resamples=n_resamples,
        confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed),
    )
    ci = res.confidence_interval
    return Ratio(value, float(ci.low), float(ci.high), confidence, int(xa.size), int(xb.size))


def spread_warning(times_ms: list[float], threshold: float = 0.10) -> str | None:
    """pyperf-style warning when the step times are too noisy to compare finely."""
    if len(times_ms) < 3:
        return f"only {len(times_ms)} timed steps: intervals are wide"
    a = np.asarray(times_ms, dtype=float)
    cv = float(a.std(ddof=1) / a.mean())
    if cv > threshold:
        return f"step-time spread is {cv:.0%} of the mean (over {threshold:.0%}): results are noisy"
    return None
