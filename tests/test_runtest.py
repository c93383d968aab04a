"""The run-level significance test (analysis/runtest.py): an exact one-sided rank test on
per-run medians. Complete separation, alpha's granularity, ties, pooled baselines, and
repeats_needed against the test's real power. Fixed seeds keep it exact."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from mpbench.analysis.regression import rejection_rate, slowdown_test_runs
from mpbench.analysis.runtest import (
    rank_test_power,
    repeats_needed,
    run_test,
    runs_for_alpha,
    smallest_p,
)

pytestmark = pytest.mark.unit


def runs_at(medians: list[float], seed: int = 0, steps: int = 40) -> list[list[float]]:
    """One run per median, its steps jittered 5% around it."""
    rng = np.random.default_rng(seed)
    return [list(m * rng.lognormal(0, 0.05, steps)) for m in medians]


def test_busy_machine_case_complete_separation_at_three_runs_is_a_regression() -> None:
    """The README's +532% case: three quiet runs, three beside two busy processes whose
    medians vary 2.4x among themselves. Every busy run is slower than every quiet one."""
    quiet, busy = runs_at([10.0, 10.5, 11.0]), runs_at([40.0, 70.0, 95.0], seed=1)
    test = slowdown_test_runs(quiet, busy)
    assert test.verdict == "regression"
    assert test.p_slower == pytest.approx(1 / math.comb(6, 3))  # the smallest p: 0.05
    assert "exact" in test.test and "p=0.05 <= alpha 0.05" in test.why
    assert test.ratio is not None and test.ratio.low > 1.05  # the interval shown agrees
    # one busy run only a little slow: still complete separation, still p = 1/20; Welch's t
    # on the log run medians (the earlier test) lets its df collapse and misses it
    wild = runs_at([12.0, 60.0, 95.0], seed=1)
    assert slowdown_test_runs(quiet, wild).verdict == "regression"
    log_q = np.log([np.median(r) for r in quiet])
    log_w = np.log([np.median(r) for r in wild])
    assert sps.ttest_ind(log_w, log_q, equal_var=False, alternative="greater").pvalue > 0.05
    assert slowdown_test_runs(busy, quiet).verdict == "improved"
    # the gate ranks the current runs divided by the allowed 1.05: a run at 11.3 ms counts
    # as 10.76 ms, between the baseline's 10.5 and 11.0: p = 2/20, not a regression
    overlap = slowdown_test_runs(quiet, runs_at([11.3, 70.0, 95.0], seed=2))
    assert overlap.p_slower == pytest.approx(2 / 20) and overlap.verdict != "regression"
    # 11.6 ms is above 11.0 * 1.05: complete separation beyond the limit again
    beyond = slowdown_test_runs(quiet, runs_at([11.6, 70.0, 95.0], seed=2))
    assert beyond.p_slower == pytest.approx(1 / 20) and beyond.verdict == "regression"
    # every current run slower than every baseline run, but not by the allowed 5% beyond it
    # (11.2 / 1.05 = 10.67 < 11.0): plainly slower is not "slower beyond the limit"
    within = slowdown_test_runs(quiet, runs_at([11.2, 11.4, 11.6], seed=3))
    assert within.verdict != "regression" and within.p_slower is not None
    assert within.p_slower > 1 / 20


def test_alpha_below_the_smallest_p_is_inconclusive_with_the_runs_it_needs() -> None:
    quiet, busy = runs_at([10.0, 10.5, 11.0]), runs_at([40.0, 70.0, 95.0], seed=1)
    strict = slowdown_test_runs(quiet, busy, alpha=0.01)
    assert strict.verdict == "inconclusive"
    floor = runs_for_alpha(0.01)
    assert smallest_p(floor, floor) <= 0.01 < smallest_p(floor - 1, floor - 1)
    assert f"needs {floor} runs per side for alpha 0.01" in strict.why
    assert strict.repeats_needed is not None and strict.repeats_needed >= floor
    # with that many runs per side the same complete separation is called
    many = slowdown_test_runs(runs_at([10.0, 10.2, 10.4, 10.6, 11.0][:floor]),
                              runs_at([40.0, 55.0, 70.0, 80.0, 95.0][:floor], seed=1),
                              alpha=0.01)
    assert many.verdict == "regression" and many.p_slower == pytest.approx(smallest_p(floor, floor))
    # two runs a side can never reach 0.05 (1/6): inconclusive, naming 3
    two = slowdown_test_runs(quiet[:2], busy[:2])
    assert two.verdict == "inconclusive" and "needs 3 runs per side" in two.why
    assert "--repeats" in two.why


@pytest.mark.parametrize("alpha", [0.2, 0.1, 0.05, 0.02, 0.01, 0.001, 1e-5])
def test_runs_for_alpha_is_the_fewest_that_can_reach_it(alpha: float) -> None:
    n = runs_for_alpha(alpha)
    assert smallest_p(n, n) <= alpha
    assert n == 2 or smallest_p(n - 1, n - 1) > alpha
    for sigma in (0.0, 1e-4, 0.05, 0.3):
        needed = repeats_needed(sigma, 0.1, alpha)
        assert needed is not None and needed >= n  # never a count that cannot reach alpha
    assert repeats_needed(0.0, 0.1, alpha) == n


def test_alpha_must_be_positive() -> None:
    with pytest.raises(ValueError, match="alpha must be > 0"):
        runs_for_alpha(0.0)


def test_ties_use_the_exact_permutation_distribution() -> None:
    same = [[10.0] * 20] * 3
    identical = run_test(same, same)
    assert identical.p_slower == identical.p_faster == pytest.approx(1.0)
    assert "midranks" in identical.method
    assert slowdown_test_runs(same, same).verdict == "ok"
    # runs tied within each side but apart between them: complete separation
    slow = slowdown_test_runs(same, [[12.0] * 20] * 3)
    assert slow.verdict == "regression" and slow.p_slower == pytest.approx(1 / 20)
    # a tie across the sides (10 in both): p counts it half, above the separated 1/20
    tie = run_test([[9.0], [9.5], [10.0]], [[10.0], [12.0], [13.0]])
    assert tie.p_slower is not None and 1 / 20 < tie.p_slower <= 2 / 20


def test_pooled_baselines_give_finer_p_values() -> None:
    """Six baseline runs (two sources pooled) against two current runs: 1/C(8, 2) = 1/28
    < 0.05, so two current runs suffice when the baseline side has six."""
    base = runs_at([10.0, 10.2, 10.4, 10.1, 10.3, 10.5])
    test = slowdown_test_runs(base, runs_at([12.0, 12.5], seed=3))
    assert test.p_slower == pytest.approx(1 / math.comb(8, 2))
    assert test.verdict == "regression"


def test_repeats_needed_matches_the_tests_power() -> None:
    """At the count repeats_needed names, the gate's own test detects the effect about 80%
    of the time under lognormal run noise; one run fewer, clearly less often."""
    sigma, effect, trials = 0.05, 0.1, 300
    n = repeats_needed(sigma, effect)
    assert n is not None and runs_for_alpha(0.05) <= n <= 12
    rng = np.random.default_rng(21)

    def pairs(k: int) -> list[tuple[list[list[float]], list[list[float]]]]:
        def draw(scale: float) -> list[list[float]]:
            return [list(scale * 20 * rng.lognormal(0, sigma) * rng.lognormal(0, 0.01, 20))
                    for _ in range(k)]
        return [(draw(1.0), draw(1 + effect)) for _ in range(trials)]

    at_n = rejection_rate(pairs(n), max_slowdown=0.0)
    below = rejection_rate(pairs(n - 1), max_slowdown=0.0)
    assert at_n >= 0.8 - 3 * math.sqrt(0.8 * 0.2 / trials)
    assert below < at_n
    assert rank_test_power(n - 1, math.log1p(effect) / sigma, 0.05) < 0.8


def test_power_is_zero_where_alpha_is_out_of_reach() -> None:
    assert rank_test_power(2, 10.0, 0.05) == 0.0
    assert rank_test_power(3, 10.0, 0.01) == 0.0
    assert rank_test_power(3, 10.0, 0.05) == pytest.approx(1.0)
