"""Are these runs slower than those? The run-level significance test and its power.

The test: a one-sided Mann-Whitney U (Wilcoxon rank-sum) test on the per-run median step
times, with the EXACT distribution of U (runs, not steps, are the samples). Ranks are the
same for medians and for their logs. Ties between run medians (identical runs, constructed
data) get midranks and the exact permutation distribution given the ties; only beyond
PERMUTATIONS partitions with ties, or EXACT_MAX_RUNS runs in all, is the normal
approximation (tie-corrected) used.

Why this test and not Welch's t on the log run medians (the earlier test):
- it is exact: when current and baseline runs are exchangeable (same code, same machine),
  P(p <= alpha) <= alpha whatever the between-run distribution: lognormal, heavy-tailed, a
  busy neighbour for one run. Welch's t assumes normal log medians and estimates each
  side's variance from its own 3 runs; when one side varies a lot its degrees of freedom
  collapse towards 2, and a +532% slowdown beside two busy processes read p=0.1 at 3 vs 3.
- complete separation (every current run slower than every baseline run) is the strongest
  evidence 3 vs 3 runs can give, and the exact test gives it its exact weight, 1/C(6, 3) =
  1/20 = 0.05, however wildly the slow runs vary.
- the price: under normal noise it has about 95% of the t-test's efficiency (ARE 3/pi), and
  its p-values are discrete, so at 3 vs 3 only complete separation can reject at 0.05 and at
  2 vs 2 nothing can (smallest p 1/6).
One test only: flagging when either of two tests rejects at alpha raises the false-alarm
rate above alpha. Welch is gone; the pooled sd of log run medians (log_sigma) stays, as the
noise level that repeats_needed plans for.

The gate tests against its allowed slowdown (`margin` = 1 + max_slowdown, a non-inferiority
test): H0 is "slower by at most the allowed 5%", so a same-code rerun (true ratio 1) is
flagged in fewer than alpha of comparisons, not in alpha of them, and a regression needs every
current run beyond the limit of the baseline's at 3 vs 3 (1/20).

The rule is p <= alpha (`significant`), not p < alpha: an exact test's p-values are discrete
and P(p <= alpha) <= alpha still holds, while `<` would make 3 vs 3 runs useless at 0.05.
When alpha is below the smallest p the run counts allow (`smallest_p`), no data can reject:
the gate says inconclusive and names `runs_for_alpha`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats as sps

from mpbench.analysis.stats import MIN_RUNS, Runs, run_medians

TEST_NAME = "one-sided Mann-Whitney U on per-run median step times"
PERMUTATIONS = 20_000
"""With ties, the permutation distribution is enumerated up to this many partitions."""
EXACT_MAX_RUNS = 60
"""Without ties, scipy's exact U distribution up to this many runs in all (fast there)."""
POWER_DRAWS = 4000
SIMULATED_POWER_MAX = 12
"""Runs per side up to which repeats_needed simulates the exact test (discreteness matters
there); beyond, the t-test's power at the rank test's efficiency is close (rank_test_power)."""


@dataclass(frozen=True)
class RunTest:
    """The run-level test of new vs base (None: fewer than MIN_RUNS runs on a side)."""

    p_slower: float | None
    p_faster: float | None
    sigma: float | None
    """Pooled standard deviation of log run medians (between-run noise), when estimable."""
    method: str
    """How p was computed, for the output: 'exact', 'exact permutation, midranks for ties',
    'normal approximation, tie-corrected' (large samples), or why there is no test."""
    smallest_p: float | None = None
    """The smallest p these run counts allow (complete separation, no ties)."""


def significant(p: float | None, alpha: float) -> bool:
    """p <= alpha; the tolerance only absorbs rounding of an exact 1/C(m+n, n)."""
    return p is not None and p <= alpha * (1 + 1e-9)


def smallest_p(n_base: int, n_new: int) -> float:
    """One-sided p of complete separation under the exact test: 1 / C(m + n, n)."""
    return 1.0 / math.comb(n_base + n_new, n_new)


def runs_for_alpha(alpha: float) -> int:
    """Fewest runs per side (both sides equal) whose exact test can reach p <= alpha."""
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    n = MIN_RUNS
    while not significant(smallest_p(n, n), alpha):
        n += 1
    return n


def log_sigma(base: Runs, new: Runs) -> float | None:
    """Pooled sd of log run medians over the sides that have 2+ runs."""
    ss, df = 0.0, 0
    for side in (base, new):
        m = np.log(run_medians(side))
        if m.size >= 2:
            ss += float(((m - m.mean()) ** 2).sum())
            df += m.size - 1
    return math.sqrt(ss / df) if df else None


def _rank_mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def _p_value(a: np.ndarray, b: np.ndarray, alternative: str) -> tuple[float, str]:
    """(p, method) that run medians b (new) are "greater" or "less" than a (base)."""
    pooled = np.concatenate([a, b])
    ties = np.unique(pooled).size < pooled.size
    if not ties and pooled.size <= EXACT_MAX_RUNS:
        p = sps.mannwhitneyu(b, a, alternative=alternative, method="exact").pvalue
        return float(p), "exact"
    if ties and math.comb(pooled.size, b.size) <= PERMUTATIONS:
        ranks = sps.rankdata(pooled)
        p = sps.permutation_test((ranks[a.size:], ranks[:a.size]), _rank_mean_difference,
                                 vectorized=True, n_resamples=PERMUTATIONS,
                                 alternative=alternative).pvalue
        return float(p), "exact permutation, midranks for ties"
    p = sps.mannwhitneyu(b, a, alternative=alternative, method="asymptotic").pvalue
    return float(p), "normal approximation, tie-corrected"


def run_test(base: Runs, new: Runs, margin: float = 1.0) -> RunTest:
    """p_slower tests "new is slower than base by more than `margin`" (H0: new / base <=
    margin), p_faster "new is faster by more than `margin`": the new runs are divided
    (multiplied) by the margin before ranking. margin 1: plainly slower / faster."""
    if not margin >= 1.0:
        raise ValueError(f"margin must be >= 1, got {margin}")
    a, b = run_medians(base), run_medians(new)
    sigma = log_sigma(base, new)
    if a.size < MIN_RUNS or b.size < MIN_RUNS:
        return RunTest(None, None, sigma, f"none: needs {MIN_RUNS}+ runs per side")
    slower, method = _p_value(a, b / margin, "greater")
    faster, _ = _p_value(a, b * margin, "less")
    return RunTest(slower, faster, sigma, method, smallest_p(a.size, b.size))


def _null_u_counts(n: int) -> np.ndarray:
    """How many of the C(2n, n) rank orders give U = 0 .. n*n (n vs n runs, no ties)."""
    # counts[i][j] is the U distribution of i vs j: f(i, j) = f(i-1, j) + f(i, j-1) << i
    counts: list[list[np.ndarray]] = [[np.ones(1, dtype=np.int64)] * (n + 1)]
    for i in range(1, n + 1):
        row = [np.ones(1, dtype=np.int64)]
        for j in range(1, n + 1):
            out = np.zeros(i * j + 1, dtype=np.int64)
            out[: (i - 1) * j + 1] += counts[i - 1][j]
            out[i:] += row[j - 1]
            row.append(out)
        counts.append(row)
    return counts[n][n]


@lru_cache(maxsize=128)
def _critical_quantiles(n: int, alpha: float) -> np.ndarray | None:
    """Sorted, over simulated n-vs-n draws of standard normal runs, the shift below which
    the exact test at alpha stops rejecting (None: alpha is out of reach at n)."""
    counts = _null_u_counts(n)
    tail = np.cumsum(counts[::-1])[::-1] / counts.sum()  # P(U >= u)
    reachable = np.flatnonzero([significant(float(t), alpha) for t in tail])
    if not reachable.size:
        return None
    u_crit = int(reachable[0])
    # U(d) = #{(i, j): base_i < new_j + d} reaches u_crit iff the u_crit-th smallest
    # difference base_i - new_j is below d: one order statistic per draw serves every d
    rng = np.random.default_rng(n)
    base, new = rng.standard_normal((2, POWER_DRAWS, n))
    diffs = (base[:, :, None] - new[:, None, :]).reshape(POWER_DRAWS, n * n)
    return np.sort(np.partition(diffs, u_crit - 1, axis=1)[:, u_crit - 1])


def rank_test_power(n: int, shift: float, alpha: float) -> float:
    """Power of the exact test at n vs n runs when the log run medians are normal and the
    current ones shifted by `shift` standard deviations: simulated up to
    SIMULATED_POWER_MAX runs per side; beyond, the t-test's power at the test's asymptotic
    relative efficiency, 3n/pi runs (within 2 points of simulation at 13-30 runs)."""
    if n <= SIMULATED_POWER_MAX:
        thresholds = _critical_quantiles(n, alpha)
        if thresholds is None:
            return 0.0
        return float(np.searchsorted(thresholds, shift, side="left") / POWER_DRAWS)
    n_eff = n * 3 / math.pi
    df = 2 * n_eff - 2
    return float(sps.nct.sf(sps.t.ppf(1 - alpha, df), df, shift / math.sqrt(2 / n_eff)))


def repeats_needed(sigma: float | None, effect: float, alpha: float = 0.05,
                   power: float = 0.8, most: int = 200) -> int | None:
    """Runs per side for the exact one-sided test at `alpha` to detect a step-time ratio of
    1 + effect with `power`, given between-run noise sigma (sd of log run medians). Never
    below runs_for_alpha(alpha): fewer runs could not reach alpha at all. None when sigma
    is unknown (a single run per side)."""
    if sigma is None or effect <= 0:
        return None
    floor = runs_for_alpha(alpha)
    if sigma == 0:
        return floor
    shift = math.log1p(effect) / sigma
    most = max(most, floor)
    for n in range(floor, min(most, SIMULATED_POWER_MAX) + 1):
        if rank_test_power(n, shift, alpha) >= power:
            return n
    low, high = max(floor, SIMULATED_POWER_MAX + 1), most  # the approximation grows with n
    if rank_test_power(high, shift, alpha) < power:
        return most
    while low < high:
        mid = (low + high) // 2
        low, high = (mid + 1, high) if rank_test_power(mid, shift, alpha) < power else (low, mid)
    return low
