"""The one interval type and the estimators that make them: the bootstrap ratio of medians
(scipy), and the one run-level estimator of step-time and throughput ratios (gate, summary,
report, claims).

Run-level: the unit of replication is the run (one process), not the step: steps of one
process share its allocator state, thread placement and the machine's load at that moment, so
their spread understates the spread between processes (on a shared 2-core machine the medians of
one recipe moved by up to 74% between processes while a run's own IQR was ~7%).

- point value: ratio of the medians of the per-run median step times;
- interval: hierarchical bootstrap, resampling runs (with replacement) and then the steps
  within each drawn run, of that same statistic (percentile interval);
- significance: the exact one-sided rank test on the per-run medians, in runtest.py.

With fewer than 2 runs on a side there is no run-level interval (low/high are None) and the
basis says so; the gate then calls the comparison inconclusive.

Over records (claims and report): paired by seed where possible. Runs of one suite are
interleaved (seed s of every precision runs in the same round), so a drift in machine load
hits run s of both precisions alike; pairing by seed removes it.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import median
from typing import Any

import numpy as np

from mpbench.results.schema import RunRecord


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


Runs = Sequence[Sequence[float]] | Sequence[np.ndarray]
MIN_RUNS = 2
"""Runs per side below which between-run noise cannot be estimated."""
N_RESAMPLES = 2000


def _arrays(runs: Runs) -> list[np.ndarray]:
    return [np.asarray(r, dtype=float) for r in runs if len(r)]


def run_medians(runs: Runs) -> np.ndarray:
    return np.asarray([float(np.median(r)) for r in _arrays(runs)])


def _resampled_statistic(runs: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """n hierarchical resamples of median(per-run medians): runs, then steps within runs."""
    k = len(runs)
    picks = rng.integers(0, k, size=(n, k))
    medians = np.empty((n, k))
    for j in range(k):
        for r, steps in enumerate(runs):
            rows = np.flatnonzero(picks[:, j] == r)
            if rows.size:
                draws = rng.choice(steps, size=(rows.size, steps.size), replace=True)
                medians[rows, j] = np.median(draws, axis=1)
    return np.median(medians, axis=1)


def hierarchical_interval(base: Runs, new: Runs, confidence: float = 0.95,
                          n_resamples: int = N_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of median(new run medians) / median(base run medians)."""
    a, b = _arrays(base), _arrays(new)
    rng = np.random.default_rng(seed)
    ratios = _resampled_statistic(b, n_resamples, rng) / _resampled_statistic(a, n_resamples, rng)
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return float(low), float(high)


def step_time_ratio(base: Runs, new: Runs, confidence: float = 0.95,
                    n_resamples: int = N_RESAMPLES, seed: int = 0) -> Interval | None:
    """Median step time of `new` over `base` (> 1: new is slower), each side a list of runs."""
    a, b = _arrays(base), _arrays(new)
    if not a or not b:
        return None
    value = float(np.median(run_medians(b)) / np.median(run_medians(a)))
    steps = (sum(x.size for x in a), sum(x.size for x in b))
    if len(a) < MIN_RUNS or len(b) < MIN_RUNS:
        basis = (f"{len(a)} vs {len(b)} runs: no run-level interval (needs {MIN_RUNS}+ runs "
                 "per side; steps of one run are not independent samples)")
        return Interval(value, None, None, len(a), len(b), False, basis, confidence)
    if n_resamples <= 0:
        return Interval(value, None, None, len(a), len(b), False, "interval not computed",
                        confidence)
    low, high = hierarchical_interval(a, b, confidence, n_resamples, seed)
    basis = (f"hierarchical bootstrap over {len(a)} vs {len(b)} runs "
             f"({steps[0]} vs {steps[1]} steps)")
    return Interval(value, low, high, len(a), len(b), False, basis, confidence)


def speedup_ratio(base: Runs, new: Runs, confidence: float = 0.95,
                  n_resamples: int = N_RESAMPLES, seed: int = 0) -> Interval | None:
    """Throughput of `new` over `base` (> 1: new is faster) from the runs' step times."""
    ratio = step_time_ratio(base, new, confidence, n_resamples, seed)
    return ratio.inverted() if ratio is not None else None


CONFIDENCE = 0.95
MIN_PAIRS = 3
"""Fewer seed pairs than this give no useful paired interval; fall back to pooled samples."""


def _bootstrap(data: tuple[np.ndarray, ...], stat: Callable[..., np.ndarray], paired: bool
               ) -> tuple[float, float]:
    from scipy import stats as sps  # lazily, as in median_ratio

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
    estimator every view uses (speedup_ratio over per-run step times)."""
    return speedup_ratio([r.step_times_ms for r in base if r.step_times_ms],
                         [r.step_times_ms for r in new if r.step_times_ms], CONFIDENCE)
