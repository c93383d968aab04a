"""The gate's rules: throughput, peak memory, eval loss and run status, one configuration at a time."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import median
from typing import Any, Literal

import numpy as np

from mpbench.analysis.compare import Group, run_median_ms
from mpbench.analysis.equivalence import BETTER, EQUIVALENT, WORSE, equivalence_test
from mpbench.analysis.regression import slowdown_test_runs
from mpbench.gate.matching import ConfigPair
from mpbench.interop.pytest_benchmark import RunSummary

Verdict = Literal["regression", "improved", "ok", "inconclusive"]

CPU_RSS_NOISE_BYTES = 4 * 2**20
"""On a CPU the peak is RSS above the run's start; repeated identical tiny runs moved it by up
to ~1 MiB (allocator caching), so growth below this is never called a regression there."""


@dataclass(frozen=True)
class Limits:
    max_slowdown: float = 0.05
    """Allowed step-time increase (0.05 = 5%)."""
    max_memory_growth: float = 0.03
    """Allowed peak-memory increase (0.03 = 3%)."""
    loss_tolerance: float = 0.02
    """Allowed eval-loss increase: nats, or a fraction of the baseline loss when relative."""
    loss_relative: bool = False
    alpha: float = 0.05
    """Significance level of the throughput test (the false-alarm rate it allows)."""
    normalize_by_probe: bool = False
    """Divide each run's step times by its machine-drift probe time (--normalize-by-probe)."""


@dataclass
class Finding:
    config: str
    metric: str
    baseline: str
    current: str
    change: str
    verdict: Verdict
    detail: str
    runs: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"config": self.config, "metric": self.metric, "baseline": self.baseline,
                "current": self.current, "change": self.change, "verdict": self.verdict,
                "detail": self.detail, "runs": self.runs, "values": self.values}


def _pct(x: float) -> str:
    return f"{x:+.1%}"


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def check_status(pair: ConfigPair) -> list[Finding]:
    """Per seed: a run that used to succeed and now does not is always a regression (runs
    of one seed with the same outcome, its repeats, make one finding)."""
    base: dict[int, RunSummary] = {}
    for r in pair.baseline.records:  # pooled baselines: a seed that ran anywhere counts as running
        if r.seed not in base or r.status == "ok":
            base[r.seed] = r
    findings: list[Finding] = []
    for cur in pair.current.records:
        old = base.get(cur.seed)
        if old is None or (old.status == "ok" and cur.status == "ok"):
            continue
        was = old.status if old.status == "ok" else f"{old.status}: {old.reason or '-'}"
        now = cur.status if cur.status == "ok" else f"{cur.status}: {cur.reason or '-'}"
        verdict: Verdict
        if old.status == "ok":
            verdict, detail = "regression", f"used to succeed, now {cur.status}"
        elif cur.status == "ok":
            verdict, detail = "improved", f"was {old.status}, now runs"
        elif old.status == cur.status == "skipped" and old.reason != cur.reason:
            verdict, detail = "regression", "skipped with a new reason"
        elif (old.status, old.reason) == (cur.status, cur.reason):
            verdict, detail = "ok", f"still {cur.status}, as in the baseline"
        else:
            verdict, detail = "inconclusive", f"was {old.status}, now {cur.status}"
        same = next((f for f in findings if (f.baseline, f.current, f.verdict) == (was, now, verdict)),
                    None)
        if same is not None:  # repeats of one seed with the same outcome: one finding
            same.runs.append(cur.run_id)
            continue
        findings.append(Finding(pair.config_id, "status", was, now, "-", verdict, detail,
                                [cur.run_id], {"baseline": old.status, "current": cur.status}))
    return findings


def _step_times(runs: list[RunSummary], limits: Limits, ref: float | None) -> list[list[float]]:
    """Per-run step times, divided by the run's probe (scaled back to ms) when normalizing."""
    if not limits.normalize_by_probe or ref is None:
        return [list(r.step_times_ms) for r in runs]
    return [[t * ref / r.probe_ms for t in r.step_times_ms] for r in runs if r.probe_ms]


def _by_source(runs: list[RunSummary], times: list[list[float]]) -> list[list[list[float]]]:
    groups: dict[str, list[list[float]]] = {}
    for r, t in zip(runs, times, strict=True):
        groups.setdefault(r.source, []).append(t)
    return list(groups.values())


def check_throughput(pair: ConfigPair, limits: Limits) -> Finding | None:
    """Run-level: each run (process) is one sample; see analysis/regression.py."""
    base_ok, cur_ok = pair.baseline.ok, pair.current.ok
    if not base_ok or not cur_ok:
        return None  # the status rule speaks for runs that did not finish
    probes = [r.probe_ms for r in base_ok + cur_ok if r.probe_ms]
    ref = float(median(probes)) if probes else None
    base_runs, cur_runs = _step_times(base_ok, limits, ref), _step_times(cur_ok, limits, ref)
    groups = _by_source(base_ok, base_runs)
    test = slowdown_test_runs(base_runs, cur_runs, limits.alpha, limits.max_slowdown,
                              baseline_groups=groups if len(groups) > 1 else None)
    r = test.ratio
    if r is None:
        change = "-"
    elif r.low is not None and r.high is not None:
        change = f"{_pct(r.value - 1)} [{_pct(r.low - 1)}, {_pct(r.high - 1)}]"
    else:
        change = f"{_pct(r.value - 1)} (no run-level CI)"
    base_med = run_median_ms(base_runs)
    cur_med = run_median_ms(cur_runs)
    n_steps = (sum(len(t) for t in base_runs), sum(len(t) for t in cur_runs))
    return Finding(
        pair.config_id, "step time",
        f"{base_med:.2f} ms ({len(base_runs)} runs, n={n_steps[0]})" if base_med else "-",
        f"{cur_med:.2f} ms ({len(cur_runs)} runs, n={n_steps[1]})" if cur_med else "-",
        change, test.verdict, test.why, [x.run_id for x in cur_ok],
        {"ratio": r.as_dict() if r else None, "p_slower": test.p_slower,
         "p_faster": test.p_faster, "test": test.test,
         "repeats_needed": test.repeats_needed, "baseline_spread": test.baseline_spread,
         "normalized_by_probe": limits.normalize_by_probe,
         "baseline_median_ms": base_med, "current_median_ms": cur_med},
    )


def check_memory(pair: ConfigPair, limits: Limits) -> Finding | None:
    base, cur = pair.baseline.median_of("peak_bytes"), pair.current.median_of("peak_bytes")
    if base is None or cur is None:
        return None
    growth = (cur - base) / base if base > 0 else (math.inf if cur > base else 0.0)
    cpu = any(r.memory_kind == "cpu-rss" for r in pair.current.records + pair.baseline.records)
    within_noise = cpu and abs(cur - base) <= CPU_RSS_NOISE_BYTES
    verdict: Verdict
    if growth > limits.max_memory_growth and not within_noise:
        verdict, detail = "regression", f"grew by {growth:.1%} (allowed {limits.max_memory_growth:.1%})"
    elif growth < -limits.max_memory_growth and not within_noise:
        verdict, detail = "improved", f"shrank by {-growth:.1%}"
    elif within_noise and abs(growth) > limits.max_memory_growth:
        verdict = "ok"
        detail = (f"changed by {growth:+.1%}, but by less than the CPU RSS noise "
                  f"({_mib(CPU_RSS_NOISE_BYTES)})")
    else:
        verdict, detail = "ok", f"within {limits.max_memory_growth:.1%}"
    return Finding(pair.config_id, "peak memory", _mib(base), _mib(cur),
                   _pct(growth) if math.isfinite(growth) else "new", verdict, detail,
                   [r.run_id for r in pair.current.ok],
                   {"baseline_bytes": base, "current_bytes": cur,
                    "growth": growth if math.isfinite(growth) else None})


def _seed_losses(pair: ConfigPair) -> tuple[list[float], list[float], bool] | None:
    """Eval losses per seed when both sides have >= 2 seeds; paired when the seeds agree."""
    def by_seed(group: Group[RunSummary]) -> dict[int, float]:
        losses: dict[int, list[float]] = {}
        for r in group.ok:
            if r.eval_loss is not None:
                losses.setdefault(r.seed, []).append(r.eval_loss)
        return {seed: float(np.mean(v)) for seed, v in losses.items()}  # pooled baselines

    base, cur = by_seed(pair.baseline), by_seed(pair.current)
    if len(base) < 2 or len(cur) < 2:
        return None
    if set(base) == set(cur):
        seeds = sorted(base)
        return [cur[s] for s in seeds], [base[s] for s in seeds], True
    return list(cur.values()), list(base.values()), False


def _loss_verdict(pair: ConfigPair, delta: float, tol: float,
                  alpha: float) -> tuple[Verdict, str, dict[str, Any]]:
    seeds = _seed_losses(pair)
    if seeds is None:  # one seed: the tolerance alone decides
        if delta > tol:
            return "regression", f"worse by {delta:.4f} nats (tolerance {tol:.4f})", {}
        if delta < -tol:
            return "improved", f"better by {-delta:.4f} nats", {}
        return "ok", f"within {tol:.4f} nats", {}
    cur, base, paired = seeds
    eq = equivalence_test(cur, base, margin=tol, alpha=alpha, paired=paired,
                          margin_source="--loss-tolerance")
    extra = {"equivalence": eq.as_dict()}
    how = f"TOST over {len(cur)} seeds{' (paired)' if paired else ''}: {eq.note}"
    if eq.verdict == EQUIVALENT:
        return "ok", f"equivalent within +-{tol:.4f}; {how}", extra
    diff = eq.diff if eq.diff is not None else delta
    if eq.verdict == WORSE and diff > tol:
        return "regression", f"worse by {diff:.4f} nats (tolerance {tol:.4f}); {how}", extra
    if eq.verdict == BETTER:
        return "improved", f"better; {how}", extra
    return "inconclusive", f"cannot show equivalence within +-{tol:.4f}; {how}", extra


def check_loss(pair: ConfigPair, limits: Limits) -> Finding | None:
    """Eval loss: the tolerance alone with one seed; a TOST equivalence test with seeds."""
    base, cur = pair.baseline.median_of("eval_loss"), pair.current.median_of("eval_loss")
    if base is None or cur is None:
        return None
    tol = limits.loss_tolerance * abs(base) if limits.loss_relative else limits.loss_tolerance
    delta = cur - base
    verdict, detail, extra = _loss_verdict(pair, delta, tol, limits.alpha)
    return Finding(pair.config_id, "eval loss", f"{base:.4f}", f"{cur:.4f}", f"{delta:+.4f}",
                   verdict, detail, [r.run_id for r in pair.current.ok],
                   {"baseline": base, "current": cur, "delta": delta, "tolerance": tol, **extra})


def check_pair(pair: ConfigPair, limits: Limits) -> list[Finding]:
    found = check_status(pair)
    for rule in (check_throughput, check_memory, check_loss):
        finding = rule(pair, limits)
        if finding is not None:
            found.append(finding)
    return found
