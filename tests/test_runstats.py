"""Run-level statistics under simulated RUN-level noise: calibration, power, coverage.

Each simulated run has its own median (process-to-process noise: lognormal, or heavy-tailed
with a t(2) log), and its steps jitter around it with occasional 2-4x stalls, like a busy
CPU. Fixed seeds keep it exact. The exact test's own properties: tests/test_runtest.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from mpbench.analysis.regression import rejection_rate, slowdown_test_runs
from mpbench.analysis.runtest import repeats_needed
from mpbench.analysis.stats import median_ratio, speedup_ratio, step_time_ratio

pytestmark = pytest.mark.unit
TRIALS = 300


def side(rng: np.random.Generator, runs: int, scale: float = 1.0, run_sd: float = 0.15,
         steps: int = 30, heavy: bool = False) -> list[list[float]]:
    out = []
    for _ in range(runs):
        run_noise = rng.standard_t(2) if heavy else rng.standard_normal()  # t(2): no variance
        t = 20.0 * np.exp(run_sd * run_noise) * rng.lognormal(0, 0.05, steps)
        stalls = rng.random(steps) < 0.1
        t[stalls] *= rng.uniform(2, 4, stalls.sum())
        out.append(list(t * scale))
    return out


def upper(n: int, p: float, q: float = 0.999) -> int:
    return int(sps.binom.ppf(q, n, p))


@pytest.mark.parametrize("heavy", [False, True], ids=["lognormal", "heavy-tailed"])
@pytest.mark.parametrize(("runs", "alpha"), [(2, 0.05), (3, 0.05), (5, 0.05), (3, 0.01)])
def test_false_alarms_under_run_level_noise_are_at_most_alpha(runs: int, alpha: float,
                                                              heavy: bool) -> None:
    rng = np.random.default_rng(runs * 100 + int(alpha * 100) + heavy)
    pairs = [(side(rng, runs, heavy=heavy), side(rng, runs, heavy=heavy)) for _ in range(TRIALS)]
    flagged = round(rejection_rate(pairs, alpha=alpha) * TRIALS)
    assert flagged <= upper(TRIALS, alpha)


@pytest.mark.parametrize("heavy", [False, True], ids=["lognormal", "heavy-tailed"])
@pytest.mark.parametrize("runs", [3, 5])
def test_the_bare_test_fires_at_about_alpha_under_the_null(runs: int, heavy: bool) -> None:
    """No effect threshold: the exact rank test alone is calibrated (neither dead nor loud).
    Its size at 0.05 is 1/20 at 3 vs 3 and 12/252 at 5 vs 5, whatever the noise's tails."""
    rng = np.random.default_rng(7 + runs + 10 * heavy)
    pairs = [(side(rng, runs, heavy=heavy), side(rng, runs, heavy=heavy)) for _ in range(TRIALS)]
    flagged = round(rejection_rate(pairs, alpha=0.05, max_slowdown=0.0) * TRIALS)
    assert int(sps.binom.ppf(0.001, TRIALS, 0.05)) <= flagged <= upper(TRIALS, 0.05)


def test_step_pooling_would_cry_wolf_where_runs_do_not() -> None:
    """The old unit (steps pooled over runs) flags same-code reruns; run-level does not."""
    rng = np.random.default_rng(8)
    pairs = [(side(rng, 1), side(rng, 1)) for _ in range(100)]
    pooled = sum(sps.mannwhitneyu(c[0], b[0], alternative="greater").pvalue < 0.05
                 and np.median(c[0]) > 1.05 * np.median(b[0]) for b, c in pairs)
    assert pooled > 20  # about a third of same-code pairs
    assert rejection_rate(pairs) == 0.0


def test_one_run_per_side_is_inconclusive_never_regression() -> None:
    rng = np.random.default_rng(9)
    b, c = side(rng, 1), side(rng, 1, scale=3.0)
    test = slowdown_test_runs(b, c)
    assert test.verdict == "inconclusive"
    assert "1 vs 1 runs" in test.why and "--repeats 3" in test.why
    # with two runs on one side the between-run noise is known: the needed repeats are named
    test = slowdown_test_runs(side(rng, 2), side(rng, 1))
    assert test.verdict == "inconclusive" and test.repeats_needed is not None
    assert f"--repeats {test.repeats_needed}" in test.why


def test_power_under_a_shift() -> None:
    rng = np.random.default_rng(10)
    doubled = [(side(rng, 3), side(rng, 3, scale=2.0)) for _ in range(100)]
    assert rejection_rate(doubled) > 0.95
    # 10% slower at 5% run noise: the gate asks for "slower by more than the allowed 5%"
    # (current runs divided by 1.05 before ranking), so 5 runs a side catch it only sometimes
    calm = [(side(rng, 5, run_sd=0.05), side(rng, 5, 1.10, run_sd=0.05)) for _ in range(200)]
    power = rejection_rate(calm)
    assert 0.2 < power < 0.6
    # ... and the repeats the gate names for that noise do catch it (80% power planned)
    n = repeats_needed(0.05, 1.10 / 1.05 - 1)
    assert n is not None and 8 <= n <= 30
    planned = [(side(rng, n, run_sd=0.05), side(rng, n, 1.10, run_sd=0.05))
               for _ in range(200)]
    assert rejection_rate(planned) >= 0.7
    # a real 2% slowdown is within the allowed 5%: flagged at most alpha of the time (the
    # unshifted test flagged ~12% here, whenever the point estimate happened to pass +5%)
    mild = [(side(rng, 5, run_sd=0.05), side(rng, 5, 1.02, run_sd=0.05)) for _ in range(200)]
    assert rejection_rate(mild) <= 0.05


def test_run_level_interval_covers_the_null_where_step_pooling_does_not() -> None:
    rng = np.random.default_rng(11)
    run_level = pooled = 0
    for _ in range(60):
        a, b = side(rng, 5), side(rng, 5)
        r = step_time_ratio(a, b, 0.95, 400)
        assert r is not None
        run_level += r.low <= 1.0 <= r.high
        s = median_ratio([x for y in a for x in y], [x for y in b for x in y], 0.95, 400)
        assert s is not None
        pooled += s.low <= 1.0 <= s.high
    assert run_level / 60 >= 0.85
    assert pooled / 60 < 0.6


def test_ratio_values_and_orientation() -> None:
    base = [[10.0, 10.2, 9.8], [11.0, 11.1, 10.9], [10.5, 10.4, 10.6]]
    slow = [[t * 2 for t in r] for r in base]
    r = step_time_ratio(base, slow, n_resamples=200)
    assert r is not None and r.value == pytest.approx(2.0) and r.n_base == r.n_new == 3
    assert r.low <= 2.0 <= r.high
    s = speedup_ratio(base, slow, n_resamples=200)
    assert s is not None and s.value == pytest.approx(0.5) and s.high == pytest.approx(1 / r.low)
    one = step_time_ratio(base[:1], slow[:1])
    assert one is not None and not one.has_interval and "no run-level interval" in one.basis
    assert step_time_ratio([], slow) is None


def test_repeats_needed_grows_with_noise() -> None:
    assert repeats_needed(None, 0.1) is None
    few, many = repeats_needed(0.02, 0.1), repeats_needed(0.2, 0.1)
    assert few is not None and many is not None and 2 <= few < many


def test_several_baselines_spread_is_noise_to_beat() -> None:
    """Two baselines 20% apart (10 nightly runs and 2 from another runner): a current 24%
    slower than the first baseline but within 5% of the second is no regression; the pool
    alone would call it (the current runs, divided by the allowed 1.05, rank above the 10)."""
    rng = np.random.default_rng(12)
    b1, b2 = side(rng, 10, run_sd=0.01), side(rng, 2, 1.2, run_sd=0.01)
    cur = side(rng, 5, 1.24, run_sd=0.01)
    pooled = slowdown_test_runs(b1 + b2, cur)
    split = slowdown_test_runs(b1 + b2, cur, baseline_groups=[b1, b2])
    assert pooled.verdict == "regression" and pooled.p_slower is not None
    assert pooled.p_slower <= 0.05
    assert split.verdict == "inconclusive" and "spread between the baselines" in split.why
    assert split.baseline_spread == pytest.approx(0.2, abs=0.03)
    # level with the slower baseline: not significant against the pool at all
    level = slowdown_test_runs(b1 + b2, side(rng, 3, 1.2, run_sd=0.01), baseline_groups=[b1, b2])
    assert level.verdict != "regression"
    far = side(rng, 3, 1.5, run_sd=0.01)
    assert slowdown_test_runs(b1 + b2, far, baseline_groups=[b1, b2]).verdict == "regression"


def test_every_estimator_gives_the_one_interval_type_and_none_for_no_interval() -> None:
    """Run-level ratios, bootstrap ratios of medians and medians of cases are one type; a
    missing interval is None (JSON null), never NaN."""
    import json

    from mpbench.analysis.stats import Interval, median_interval, paired_median_ratio

    base = [[10.0, 10.2, 9.8], [11.0, 11.1, 10.9], [10.5, 10.4, 10.6]]
    made = [step_time_ratio(base, base, n_resamples=100), step_time_ratio(base[:1], base[:1]),
            speedup_ratio(base, base, n_resamples=100), median_ratio([1.0], [2.0]),
            median_ratio([1.0, 1.1, 0.9], [2.0, 2.1, 1.9], n_resamples=100),
            median_interval([1.0, 2.0]), median_interval([1.0, 2.0, 3.0, 4.0]),
            paired_median_ratio([1.0, 1.1, 0.9], [2.0, 2.2, 1.8])]
    assert all(isinstance(x, Interval) for x in made)
    no_ci = [x for x in made if x is not None and not x.has_interval]
    assert len(no_ci) == 3 and all(x.low is None and x.high is None for x in no_ci)
    assert "NaN" not in json.dumps([x.as_dict() for x in made if x is not None])
    assert made[7] is not None and made[7].paired and made[7].n == 3
