"""Is the current code slower than the baseline? A run-level test plus an effect size.

The unit is the run (one process): steps within a run are not independent draws, and on a
busy machine the spread between processes dwarfs the spread within one, so a step-level
test calls a same-code rerun a regression (10 of 12 rerun pairs on a 2-core box). Here a
slowdown counts only when both agree: the exact one-sided rank test on the per-run median
step times (analysis/runtest.py), with the current runs divided by 1 + max_slowdown (H0:
slower by at most the allowed), says "slower" with p <= alpha AND the ratio of the median
run medians exceeds it (AND, with several baselines, the current runs are
slower than every baseline by more than that). At 3 vs 3 runs the smallest p is 1/20, so
complete separation is a regression at alpha 0.05. Inconclusive, with the repeats that
would decide it: fewer than 2 runs per side; run counts whose smallest p is above alpha
(2 vs 2 at 0.05, 3 vs 3 at 0.01); a run-level interval reaching past the limit without
significance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mpbench.analysis.runtest import (
    TEST_NAME,
    repeats_needed,
    run_test,
    runs_for_alpha,
    significant,
)
from mpbench.analysis.stats import MIN_RUNS, Interval, Runs, run_medians, step_time_ratio

Verdict = Literal["regression", "improved", "ok", "inconclusive"]


@dataclass(frozen=True)
class SlowdownTest:
    """Current vs baseline runs: ratio > 1 means the current runs are slower."""

    ratio: Interval | None
    """median(current run medians) / median(baseline run medians), run-level interval."""
    p_slower: float | None
    """One-sided exact rank-test p-value (run medians) for 'current runs take longer'."""
    p_faster: float | None
    verdict: Verdict
    why: str
    repeats_needed: int | None = None
    """Runs per side that would detect twice the allowed slowdown (80% power)."""
    baseline_spread: float | None = None
    """max/min - 1 of the medians of the pooled baselines (several --baseline)."""
    test: str = TEST_NAME
    """The significance test and how its p was computed, for the output."""


def _beyond_limit(max_slowdown: float) -> float:
    """The effect the margin test sees when the change is twice the allowed slowdown:
    (1 + 2m) / (1 + m) - 1, since it ranks the current runs divided by 1 + m."""
    return (1 + 2 * max_slowdown) / (1 + max_slowdown) - 1


def _needed_text(n: int | None, max_slowdown: float) -> str:
    if n is None:
        return (f"run {MIN_RUNS + 1}+ repeats per side (mpbench run --repeats 3) to measure the "
                "between-run noise")
    return (f"about {n} runs per side would detect a {2 * max_slowdown:.0%} slowdown at this "
            f"between-run noise (mpbench run --repeats {n})")


def source_spread(groups: Sequence[Runs]) -> tuple[float, float, float] | None:
    """(spread, slowest, fastest) of the median run medians of several baseline sources."""
    medians = [float(np.median(run_medians(g))) for g in groups if len(run_medians(g))]
    if len(medians) < 2:
        return None
    return max(medians) / min(medians) - 1.0, max(medians), min(medians)


def slowdown_test_runs(
    baseline_runs: Runs,
    current_runs: Runs,
    alpha: float = 0.05,
    max_slowdown: float = 0.05,
    n_resamples: int = 2000,
    baseline_groups: Sequence[Runs] | None = None,
) -> SlowdownTest:
    """Step times of one configuration, one list per run, baseline vs current.

    `baseline_groups` splits the baseline runs by where they came from (several --baseline);
    a change must then also beat the spread between those baselines. n_resamples=0 skips
    the bootstrap interval (rate simulations): a 'regression' never depends on it.
    """
    ratio = step_time_ratio(baseline_runs, current_runs, 1 - alpha, n_resamples)
    if ratio is None:
        side = "baseline" if not len(run_medians(baseline_runs)) else "current"
        return SlowdownTest(None, None, None, "inconclusive", f"no step times in the {side}")
    limit = 1.0 + max_slowdown
    test = run_test(baseline_runs, current_runs, margin=limit)  # H0: within the limit
    name = f"{TEST_NAME} ({test.method})"
    runs = f"{ratio.n_base} vs {ratio.n_new} runs"
    if test.p_slower is None or test.p_faster is None or test.smallest_p is None:
        needed = repeats_needed(test.sigma, _beyond_limit(max_slowdown), alpha)
        why = (f"{runs} per side ({ratio.value - 1:+.1%}) cannot tell a change from "
               f"between-run noise; {_needed_text(needed, max_slowdown)}")
        return SlowdownTest(ratio, None, None, "inconclusive", why, needed, test=name)
    if not significant(test.smallest_p, alpha):  # no data could reject: say what would
        needed = repeats_needed(test.sigma, _beyond_limit(max_slowdown), alpha)
        floor = runs_for_alpha(alpha)
        why = (f"{runs} ({ratio.value - 1:+.1%}): the exact rank test's smallest p is "
               f"{test.smallest_p:.2g} > alpha {alpha:g}; needs {floor} runs per side for "
               f"alpha {alpha:g}")
        why += (f" (mpbench run --repeats {floor})" if needed == floor
                else f"; {_needed_text(needed, max_slowdown)}")
        return SlowdownTest(ratio, test.p_slower, test.p_faster, "inconclusive", why, needed,
                            test=name)
    spread = source_spread(baseline_groups) if baseline_groups else None
    cur = float(np.median(run_medians(current_runs)))
    slower, faster = significant(test.p_slower, alpha), significant(test.p_faster, alpha)
    needed = None
    verdict: Verdict
    if slower and ratio.value > limit:
        if spread is not None and cur <= spread[1] * limit:
            verdict = "inconclusive"
            why = (f"slower by {ratio.value - 1:.1%} (rank test p={test.p_slower:.2g}, {runs}), "
                   f"but not beyond the {spread[0]:.1%} spread between the baselines plus the "
                   f"{max_slowdown:.1%} allowed")
        else:
            verdict = "regression"
            why = (f"slower by {ratio.value - 1:.1%} > {max_slowdown:.1%} allowed, run-level "
                   f"rank test p={test.p_slower:.2g} <= alpha {alpha:g} ({runs})")
    elif faster and ratio.value < 1.0 / limit:
        if spread is not None and cur * limit >= spread[2]:
            verdict = "ok"
            why = (f"faster by {1 - ratio.value:.1%}, within the {spread[0]:.1%} spread "
                   "between the baselines")
        else:
            verdict = "improved"
            why = f"faster by {1 - ratio.value:.1%}, run-level p={test.p_faster:.2g} ({runs})"
    elif slower:
        verdict = "ok"
        why = f"slower by {ratio.value - 1:.1%}, within the allowed {max_slowdown:.1%} ({runs})"
    elif ratio.high is not None and ratio.high > limit:
        verdict = "inconclusive"
        needed = repeats_needed(test.sigma, _beyond_limit(max_slowdown), alpha)
        why = (f"too noisy: not significant (p={test.p_slower:.2g}, {runs}), yet the run-level "
               f"interval reaches {ratio.high - 1:+.0%} > {max_slowdown:.1%} allowed; "
               f"{_needed_text(needed, max_slowdown)}")
    else:
        verdict, why = "ok", f"no significant slowdown (run-level p={test.p_slower:.2g}, {runs})"
    if spread is not None and verdict != "inconclusive":
        why += f"; baselines spread {spread[0]:.1%}"
    return SlowdownTest(ratio, test.p_slower, test.p_faster, verdict, why, needed,
                        spread[0] if spread else None, name)


def rejection_rate(
    pairs: Sequence[tuple[Runs, Runs]],
    alpha: float = 0.05,
    max_slowdown: float = 0.05,
) -> float:
    """Share of (baseline runs, current runs) pairs flagged as a regression: the false-alarm
    rate when both come from one distribution, the power when the current is slowed."""
    if not pairs:
        raise ValueError("rejection_rate needs at least one pair")
    flagged = sum(
        slowdown_test_runs(b, c, alpha, max_slowdown, n_resamples=0).verdict == "regression"
        for b, c in pairs
    )
    return flagged / len(pairs)


def spread_of_runs(runs: Runs) -> float | None:
    """max/min - 1 of the runs' median step times (None below two runs)."""
    m = run_medians(runs)
    return float(m.max() / m.min() - 1.0) if m.size >= 2 and m.min() > 0 else None


__all__ = ["SlowdownTest", "rejection_rate", "slowdown_test_runs", "spread_of_runs"]
