"""Equivalence of final losses: two one-sided t-tests (TOST) with scipy.

The question "does recipe X reach FP32's quality?" is an equivalence question: a plain
t-test that fails to find a difference proves nothing (too few seeds also fail to find
one). TOST asks instead whether the difference lies inside (-margin, +margin) with
confidence 1 - alpha; equivalently, whether the (1 - 2*alpha) confidence interval of the
difference lies inside the margin.

Verdicts (loss: lower is better; diff = recipe - reference):
  equivalent                  the 1-2a interval lies inside (-margin, +margin)
  worse                       not equivalent, and the interval lies above 0 (or seeds diverged)
  better                      not equivalent, and the interval lies below 0
  inconclusive (n too small)  the interval straddles a margin and 0: more seeds are needed
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

EQUIVALENT, WORSE, BETTER, INCONCLUSIVE = "equivalent", "worse", "better", "inconclusive (n too small)"
VERDICTS = (EQUIVALENT, WORSE, BETTER, INCONCLUSIVE)


@dataclass(frozen=True)
class Equivalence:
    verdict: str
    n: int
    n_reference: int
    paired: bool
    mean: float | None
    reference_mean: float | None
    diff: float | None
    """mean(recipe) - mean(reference); for paired samples, the mean of the per-seed differences."""
    ci_low: float | None
    ci_high: float | None
    confidence: float
    """Of the interval (1 - 2*alpha), the one TOST at level alpha corresponds to."""
    margin: float | None
    margin_source: str
    p_lower: float | None
    """H0: diff <= -margin."""
    p_upper: float | None
    """H0: diff >= +margin."""
    p_equivalence: float | None
    """max(p_lower, p_upper): equivalent when below alpha."""
    alpha: float
    diverged: int = 0
    seeds_needed: int | None = None
    """Rough number of seeds per recipe for the interval to fit inside the margin, if the
    observed difference and spread hold (inconclusive verdicts only)."""
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(self).items()}


def spread_margin(reference: list[float] | np.ndarray, k: float = 1.0) -> float | None:
    """k standard deviations of the reference's seed-to-seed values (None below 2 seeds)."""
    r = np.asarray(reference, dtype=float)
    return float(k * r.std(ddof=1)) if r.size >= 2 else None


def _tests(a: np.ndarray, b: np.ndarray, margin: float, alpha: float,
           paired: bool) -> tuple[float, float, float, float, float]:
    """(diff, ci_low, ci_high, p_lower, p_upper) from scipy's t-tests (Welch when unpaired)."""
    if paired:
        d = a - b
        diff, spread = float(d.mean()), float(d.std(ddof=1))
    else:
        diff = float(a.mean() - b.mean())
        spread = float(math.hypot(a.std(ddof=1), b.std(ddof=1)))
    if spread == 0.0:  # no variation at all: the difference is known exactly
        return (diff, diff, diff, 0.0 if diff > -margin else 1.0, 0.0 if diff < margin else 1.0)
    conf = 1.0 - 2.0 * alpha
    if paired:
        lower = sps.ttest_1samp(d, -margin, alternative="greater")
        upper = sps.ttest_1samp(d, margin, alternative="less")
        ci = sps.ttest_1samp(d, 0.0).confidence_interval(conf)
    else:
        lower = sps.ttest_ind(a + margin, b, equal_var=False, alternative="greater")
        upper = sps.ttest_ind(a - margin, b, equal_var=False, alternative="less")
        ci = sps.ttest_ind(a, b, equal_var=False).confidence_interval(conf)
    return diff, float(ci.low), float(ci.high), float(lower.pvalue), float(upper.pvalue)


def _seeds_needed(a: np.ndarray, b: np.ndarray, diff: float, margin: float, alpha: float,
                  paired: bool) -> int | None:
    room = margin - abs(diff)
    if room <= 0:
        return None
    spread = float((a - b).std(ddof=1)) if paired else float(
        math.hypot(a.std(ddof=1), b.std(ddof=1)))
    for n in range(2, 1001):
        df = n - 1 if paired else 2 * n - 2  # Welch's df is at most 2n - 2 (rough)
        if sps.t.ppf(1.0 - alpha, df) * spread / math.sqrt(n) < room:
            return n
    return None


def equivalence_test(
    values: list[float] | np.ndarray,
    reference: list[float] | np.ndarray,
    margin: float | None,
    alpha: float = 0.05,
    paired: bool = False,
    margin_source: str = "",
    diverged: int = 0,
) -> Equivalence:
    """TOST of `values` (a recipe's final losses, one per seed) against `reference` (FP32's).

    paired=True pairs values[i] with reference[i] (same seed: same init and data order),
    which removes the seed-to-seed variation that both share. Runs that diverged are not
    in `values`; `diverged` counts them and makes the verdict `worse`.
    """
    a, b = np.asarray(values, dtype=float), np.asarray(reference, dtype=float)
    if paired and a.size != b.size:
        raise ValueError("paired samples need equal lengths")
    conf = 1.0 - 2.0 * alpha
    base: dict[str, Any] = dict(
        n=int(a.size), n_reference=int(b.size), paired=paired,
        mean=float(a.mean()) if a.size else None, reference_mean=float(b.mean()) if b.size else None,
        confidence=conf, margin=margin, margin_source=margin_source, alpha=alpha, diverged=diverged,
    )
    empty: dict[str, Any] = dict(diff=None, ci_low=None, ci_high=None, p_lower=None, p_upper=None,
                                 p_equivalence=None)
    if diverged:
        return Equivalence(WORSE, **base, **empty,
                           note=f"{diverged} of {diverged + a.size} seeds diverged (FP32's did not)")
    if margin is None:
        return Equivalence(INCONCLUSIVE, **base, **empty, note=(
            "no margin: FP32 needs >= 2 seeds for its spread, or set "
            "extensions.convergence.tolerance"))
    if a.size < 2 or b.size < 2:
        return Equivalence(INCONCLUSIVE, **base, **empty,
                           note=f"needs >= 2 seeds on each side (have {a.size} and {b.size})")
    diff, low, high, p_lo, p_hi = _tests(a, b, margin, alpha, paired)
    p = max(p_lo, p_hi)
    if p < alpha:
        verdict, needed = EQUIVALENT, None
    elif low > 0:
        verdict, needed = WORSE, None
    elif high < 0:
        verdict, needed = BETTER, None
    else:
        verdict, needed = INCONCLUSIVE, _seeds_needed(a, b, diff, margin, alpha, paired)
    note = (f"diff {diff:+.4g}, {conf:.0%} CI [{low:+.4g}, {high:+.4g}] vs margin "
            f"+-{margin:.4g}; TOST p = {p:.3g}")
    return Equivalence(verdict, **base, diff=diff, ci_low=low, ci_high=high, p_lower=p_lo,
                       p_upper=p_hi, p_equivalence=p, seeds_needed=needed, note=note)
