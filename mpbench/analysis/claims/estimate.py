"""Ratios between two sets of runs with a bootstrap interval: paired by seed where possible.

Runs of one suite are interleaved (seed s of every precision runs in the same round), so a
drift in machine load hits run s of both precisions alike; pairing by seed removes it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from statistics import median

import numpy as np
from scipy import stats as sps

from mpbench.analysis.runstats import speedup_ratio
from mpbench.analysis.stats import Interval, median_ratio
from mpbench.results.schema import RunRecord

CONFIDENCE = 0.95
MIN_PAIRS = 3
"""Fewer seed pairs than this give no useful paired interval; fall back to pooled samples."""
N_RESAMPLES = 2000


def _bootstrap(data: tuple[np.ndarray, ...], stat: Callable[..., np.ndarray], paired: bool
               ) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate (all-equal) samples warn and give NaN
        res = sps.bootstrap(data, stat, vectorized=True, paired=paired, n_resamples=N_RESAMPLES,
                            confidence_level=CONFIDENCE, method="percentile",
                            rng=np.random.default_rng(0))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _interval_or_point(value: float, low: float | None, high: float | None
                       ) -> tuple[float, float]:
    """All resamples equal (e.g. identical byte counts): the interval is the point."""
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return value, value
    return low, high


def paired_median_ratio(base: Sequence[float], new: Sequence[float]) -> Interval:
    """median(new)/median(base), pairs resampled together."""
    a, b = np.asarray(base, dtype=float), np.asarray(new, dtype=float)
    value = float(np.median(b) / np.median(a))

    def stat(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.median(y, axis=axis) / np.median(x, axis=axis)

    low, high = _interval_or_point(value, *_bootstrap((a, b), stat, paired=True))
    return Interval(value, low, high, a.size, b.size, True, f"paired over {a.size} seeds",
                    CONFIDENCE)


def median_interval(values: Sequence[float], what: str = "cases") -> Interval:
    """The median of independent cases (shapes, ops) with a bootstrap interval (3+ cases)."""
    x = np.asarray(values, dtype=float)
    value = float(np.median(x))
    basis = f"median over {x.size} {what}"
    if x.size < MIN_PAIRS:
        return Interval(value, None, None, x.size, x.size, False, basis, CONFIDENCE)

    def stat(s: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.median(s, axis=axis)

    low, high = _interval_or_point(value, *_bootstrap((x,), stat, paired=False))
    return Interval(value, low, high, x.size, x.size, False, basis, CONFIDENCE)


def by_seed(runs: list[RunRecord], metric: Callable[[RunRecord], float | None]) -> dict[int, float]:
    out: dict[int, list[float]] = {}
    for r in runs:
        v = metric(r)
        if v is not None:
            out.setdefault(r.seed, []).append(v)
    return {s: float(median(v)) for s, v in out.items()}


def quiet_median_ratio(a: list[float], b: list[float]) -> Interval | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # all-equal samples: handled by _interval_or_point
        return median_ratio(a, b)


def metric_ratio(base: list[RunRecord], new: list[RunRecord],
                 metric: Callable[[RunRecord], float | None]) -> Interval | None:
    """metric(new) / metric(base) over runs (peak memory, bytes communicated): paired by seed
    with 3+ common seeds, else per-run values, or one point. Throughput has its own run-level
    estimator (throughput_ratio)."""
    a, b = by_seed(base, metric), by_seed(new, metric)
    if not a or not b:
        return None
    common = sorted(set(a) & set(b))
    if len(common) >= MIN_PAIRS:
        return paired_median_ratio([a[s] for s in common], [b[s] for s in common])
    va, vb = list(a.values()), list(b.values())
    if len(va) >= 2 and len(vb) >= 2:
        ratio = quiet_median_ratio(va, vb)
        if ratio is not None:
            low, high = _interval_or_point(ratio.value, ratio.low, ratio.high)
            return Interval(ratio.value, low, high, len(va), len(vb), False,
                            f"per-run values ({len(va)} vs {len(vb)} runs)", CONFIDENCE)
    value = float(median(vb) / median(va))
    return Interval(value, None, None, len(va), len(vb), False, "one run each: no interval",
                    CONFIDENCE)


def throughput_ratio(base: list[RunRecord], new: list[RunRecord]) -> Interval | None:
    """tokens/s of `new` over `base` (same model, batch and sequence length): the run-level
    estimator every view uses (analysis/runstats.speedup_ratio over per-run step times)."""
    return speedup_ratio([r.step_times_ms for r in base if r.step_times_ms],
                         [r.step_times_ms for r in new if r.step_times_ms], CONFIDENCE)
