"""Is the current run slower than the baseline? A significance test plus an effect size.

A threshold alone flaps on a noisy machine; a test alone flags 0.3% slowdowns nobody cares
about. A slowdown counts only when both agree: the one-sided Mann-Whitney U test on the
per-step times says "slower" at level alpha AND the median step-time ratio exceeds the
allowed slowdown. When the data cannot tell (too few steps to ever reach significance, or
an interval too wide to rule out a slowdown beyond the limit), the verdict is inconclusive.

Caveat: steps of one run are not independent draws (the machine drifts), so the test is
somewhat optimistic about step-level evidence; the effect threshold absorbs small drifts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as sps

from mpbench.analysis.stats import Ratio, median_ratio

Verdict = Literal["regression", "improved", "ok", "inconclusive"]
Samples = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class SlowdownTest:
    """Current vs baseline step times: ratio > 1 means the current run is slower."""

    ratio: Ratio | None
    """median(current) / median(baseline), with a bootstrap interval at 1 - alpha."""
    p_slower: float | None
    """One-sided Mann-Whitney U p-value for 'current steps take longer'."""
    p_faster: float | None
    min_p: float
    """Smallest p-value these sample sizes can reach; above alpha the test cannot decide."""
    verdict: Verdict
    why: str


def min_achievable_p(n_baseline: int, n_current: int) -> float:
    """One-sided Mann-Whitney: the most extreme ordering has probability 1 / C(n1+n2, n1)."""
    if n_baseline == 0 or n_current == 0:
        return 1.0
    return 1.0 / math.comb(n_baseline + n_current, n_baseline)


def slowdown_test(
    baseline_ms: Samples,
    current_ms: Samples,
    alpha: float = 0.05,
    max_slowdown: float = 0.05,
    n_resamples: int = 2000,
    seed: int = 0,
) -> SlowdownTest:
    """Step times (ms) of one configuration, baseline vs current, pooled over its runs.

    n_resamples=0 skips the bootstrap interval: a 'regression' never depends on it (it only
    widens an 'ok' into 'inconclusive'), so rate simulations can save the time.
    """
    base = np.asarray(baseline_ms, dtype=float)
    cur = np.asarray(current_ms, dtype=float)
    min_p = min_achievable_p(base.size, cur.size)
    if base.size == 0 or cur.size == 0:
        side = "baseline" if base.size == 0 else "current"
        return SlowdownTest(None, None, None, min_p, "inconclusive", f"no step times in the {side}")
    if n_resamples > 0:
        ratio = median_ratio(base, cur, confidence=1 - alpha, n_resamples=n_resamples, seed=seed)
    else:  # no interval wanted (rate simulations): the verdict needs only the point ratio
        ratio = Ratio(float(np.median(cur) / np.median(base)), math.nan, math.nan, 1 - alpha,
                      int(base.size), int(cur.size))
    if min_p > alpha:
        return SlowdownTest(
            ratio, None, None, min_p, "inconclusive",
            f"{base.size} vs {cur.size} step times cannot reach significance at alpha={alpha:g} "
            f"(best possible p={min_p:.2g}); measure more steps or seeds",
        )
    assert ratio is not None
    p_slower = float(sps.mannwhitneyu(cur, base, alternative="greater").pvalue)
    p_faster = (float(sps.mannwhitneyu(cur, base, alternative="less").pvalue)
                if ratio.value < 1.0 else None)  # only a faster median can be 'improved'
    limit = 1.0 + max_slowdown
    if p_slower < alpha and ratio.value > limit:
        verdict: Verdict = "regression"
        why = (f"slower by {ratio.value - 1:.1%} > {max_slowdown:.1%} allowed, "
               f"Mann-Whitney p={p_slower:.2g}")
    elif p_faster is not None and p_faster < alpha and ratio.value < 1.0 / limit:
        verdict, why = "improved", f"faster by {1 - ratio.value:.1%}, p={p_faster:.2g}"
    elif p_slower < alpha:
        verdict = "ok"
        why = f"slower by {ratio.value - 1:.1%}, within the allowed {max_slowdown:.1%}"
    elif math.isfinite(ratio.high) and ratio.high > limit:
        verdict = "inconclusive"
        why = (f"too noisy: not significant (p={p_slower:.2g}), yet the interval reaches "
               f"+{ratio.high - 1:.0%} > {max_slowdown:.1%} allowed")
    else:
        verdict, why = "ok", f"no significant slowdown (p={p_slower:.2g})"
    return SlowdownTest(ratio, p_slower, p_faster, min_p, verdict, why)


def run_spread(runs: Sequence[Samples]) -> float | None:
    """max/min - 1 of the runs' median step times (None below two runs with steps)."""
    medians = [float(np.median(r)) for r in runs if len(r)]
    if len(medians) < 2:
        return None
    return max(medians) / min(medians) - 1.0


def slowdown_test_runs(
    baseline_runs: Sequence[Samples],
    current_runs: Sequence[Samples],
    alpha: float = 0.05,
    max_slowdown: float = 0.05,
    n_resamples: int = 2000,
) -> SlowdownTest:
    """slowdown_test on the pooled steps of several runs (seeds), guarded against drift.

    Steps are only exchangeable within a run. When runs of the same configuration on one
    side already differ by more than the allowed slowdown, the machine drifted between runs
    and step-level significance means little: a regression then also needs every current
    run to be slower than every baseline run by more than that drift, else it is
    inconclusive (and likewise for an improvement).
    """
    base = [t for r in baseline_runs for t in r]
    cur = [t for r in current_runs for t in r]
    test = slowdown_test(base, cur, alpha, max_slowdown, n_resamples)
    spreads = [s for s in (run_spread(baseline_runs), run_spread(current_runs)) if s is not None]
    drift = max(spreads, default=0.0)
    if test.verdict not in ("regression", "improved") or drift <= max_slowdown:
        return test
    base_med = [float(np.median(r)) for r in baseline_runs if len(r)]
    cur_med = [float(np.median(r)) for r in current_runs if len(r)]
    margin = 1.0 + drift  # drift > max_slowdown here
    separated = (min(cur_med) > max(base_med) * margin if test.verdict == "regression"
                 else max(cur_med) * margin < min(base_med))
    if separated:
        return test
    why = (f"runs of one configuration differ by {drift:.0%} among themselves (machine drift); "
           f"the {test.verdict} ({test.why}) is not beyond that spread")
    return SlowdownTest(test.ratio, test.p_slower, test.p_faster, test.min_p, "inconclusive", why)


def rejection_rate(
    pairs: Sequence[tuple[Samples, Samples]],
    alpha: float = 0.05,
    max_slowdown: float = 0.05,
) -> float:
    """Share of (baseline, current) pairs flagged as a regression: the false-alarm rate when
    the pairs come from one distribution, the detection power when the current is slowed."""
    if not pairs:
        raise ValueError("rejection_rate needs at least one pair")
    flagged = sum(
        slowdown_test(b, c, alpha, max_slowdown, n_resamples=0).verdict == "regression"
        for b, c in pairs
    )
    return flagged / len(pairs)
