"""Ratios between two sets of runs with a bootstrap interval: paired by seed where possible.

Runs of one suite are interleaved (seed s of every precision runs in the same round), so a
drift in machine load hits run s of both precisions alike; pairing by seed removes it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import median

import numpy as np
from scipy import stats as sps

from mpbench.analysis.runstats import speedup_ratio
from mpbench.analysis.stats import Ratio, median_ratio
from mpbench.results.schema import RunRecord

CONFIDENCE = 0.95
MIN_PAIRS = 3
"""Fewer seed pairs than this give no useful paired interval; fall back to pooled samples."""
N_RESAMPLES = 2000


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float | None
    high: float | None
    n: int
    """Samples per side (seeds when paired or per run, steps when pooled)."""
    paired: bool
    basis: str
    """How the interval was formed, for the method notes."""


def _bootstrap(data: tuple[np.ndarray, ...], stat: Callable[..., np.ndarray], paired: bool
               ) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate (all-equal) samples warn and give NaN
        res = sps.bootstrap(data, stat, vectorized=True, paired=paired, n_resamples=N_RESAMPLES,
                            confidence_level=CONFIDENCE, method="percentile",
                            rng=np.random.default_rng(0))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _interval_or_point(value: float, low: float, high: float) -> tuple[float, float]:
    """All resamples equal (e.g. identical byte counts): the interval is the point."""
    if math.isnan(low) or math.isnan(high):
        return value, value
    return low, high


def paired_median_ratio(base: Sequence[float], new: Sequence[float]) -> tuple[float, float, float]:
    """median(new)/median(base), pairs resampled together."""
    a, b = np.asarray(base, dtype=float), np.asarray(new, dtype=float)
    value = float(np.median(b) / np.median(a))

    def stat(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.median(y, axis=axis) / np.median(x, axis=axis)

    low, high = _bootstrap((a, b), stat, paired=True)
    return (value, *_interval_or_point(value, low, high))


def median_interval(values: Sequence[float]) -> tuple[float, float | None, float | None]:
    """The median of independent cases (shapes, ops) with a bootstrap interval (3+ cases)."""
    x = np.asarray(values, dtype=float)
    value = float(np.median(x))
    if x.size < MIN_PAIRS:
        return value, None, None

    def stat(s: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.median(s, axis=axis)

    low, high = _bootstrap((x,), stat, paired=False)
    low, high = _interval_or_point(value, low, high)
    return value, low, high


def by_seed(runs: list[RunRecord], metric: Callable[[RunRecord], float | None]) -> dict[int, float]:
    out: dict[int, list[float]] = {}
    for r in runs:
        v = metric(r)
        if v is not None:
            out.setdefault(r.seed, []).append(v)
    return {s: float(median(v)) for s, v in out.items()}


def quiet_median_ratio(a: list[float], b: list[float]) -> Ratio | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # all-equal samples: handled by _interval_or_point
        return median_ratio(a, b)


def compare_runs(base: list[RunRecord], new: list[RunRecord],
                 metric: Callable[[RunRecord], float | None],
                 samples: Callable[[RunRecord], list[float]] | None = None,
                 samples_inverse: bool = False) -> Estimate | None:
    """metric(new) / metric(base) over runs.

    Paired by seed with 3+ common seeds; else, when `samples` gives per-step values, pooled
    step samples (unpaired; `samples_inverse` when the metric is the inverse of the samples,
    as throughput is of step time); else per-run values, or one point.
    """
    a, b = by_seed(base, metric), by_seed(new, metric)
    if not a or not b:
        return None
    common = sorted(set(a) & set(b))
    if len(common) >= MIN_PAIRS:
        value, low, high = paired_median_ratio([a[s] for s in common], [b[s] for s in common])
        return Estimate(value, low, high, len(common), True, f"paired over {len(common)} seeds")
    if samples is not None:
        sa = [x for r in base for x in samples(r)]
        sb = [x for r in new for x in samples(r)]
        if len(sa) >= 2 and len(sb) >= 2:
            ratio = quiet_median_ratio(sb, sa) if samples_inverse else quiet_median_ratio(sa, sb)
            if ratio is not None:
                low, high = _interval_or_point(ratio.value, ratio.low, ratio.high)
                return Estimate(ratio.value, low, high, min(len(sa), len(sb)), False,
                                f"pooled step times ({len(sa)} vs {len(sb)} steps)")
    va, vb = list(a.values()), list(b.values())
    if len(va) >= 2 and len(vb) >= 2:
        ratio = quiet_median_ratio(va, vb)
        if ratio is not None:
            low, high = _interval_or_point(ratio.value, ratio.low, ratio.high)
            return Estimate(ratio.value, low, high, min(len(va), len(vb)), False,
                            f"per-run values ({len(va)} vs {len(vb)} runs)")
    value = float(median(vb) / median(va))
    return Estimate(value, None, None, min(len(va), len(vb)), False, "one run each: no interval")


def tokens_per_s(r: RunRecord) -> float | None:
    return r.tokens_per_s


def step_times(r: RunRecord) -> list[float]:
    return list(r.step_times_ms)


def throughput_ratio(base: list[RunRecord], new: list[RunRecord]) -> Estimate | None:
    """tokens/s of `new` over `base` (same model, batch and sequence length): the run-level
    estimator every view uses (analysis/runstats.speedup_ratio over per-run step times)."""
    ratio = speedup_ratio([r.step_times_ms for r in base if r.step_times_ms],
                          [r.step_times_ms for r in new if r.step_times_ms], CONFIDENCE)
    if ratio is None:
        return None
    low, high = ((ratio.low, ratio.high) if ratio.has_interval else (None, None))
    return Estimate(ratio.value, low, high, min(ratio.n_base, ratio.n_new), False, ratio.basis)
