"""The one run-level estimator of step-time and throughput ratios (gate, summary, report, claims).

The unit of replication is the run (one process), not the step: steps of one process share
its allocator state, thread placement and the machine's load at that moment, so their
spread understates the spread between processes (on a shared 2-core machine the medians of
one recipe moved by up to 74% between processes while a run's own IQR was ~7%).

- point value: ratio of the medians of the per-run median step times;
- interval: hierarchical bootstrap, resampling runs (with replacement) and then the steps
  within each drawn run, of that same statistic (percentile interval);
- significance: the exact one-sided rank test on the per-run medians, in runtest.py.

With fewer than 2 runs on a side there is no run-level interval (low/high are None) and the
basis says so; the gate then calls the comparison inconclusive.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mpbench.analysis.stats import Interval

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
