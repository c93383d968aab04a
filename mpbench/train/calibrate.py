"""Hold a suite to its device profile's time budget, by measurement on the machine it meets.

Before the first run every distinct recipe (model x precision x train setting; seeds share
it) trains short runs through the same code as a real run (see `calibrate`): the run's own
warm-up steps (at least one) and `calibration_steps` measured steps, bare and, for the
fastest and slowest recipe of a model, with the suite's profilers and eval (periodic work
made to happen at every step). Warm-up as long as the run's own: a process's first steps of
a recipe pay one-off costs (kernel selection, JIT, the allocator's first touches) that the
run's warm-up absorbs too, and a step timed among them once planned a cold first run at 4x
its real step time. The cost of one run of a recipe:

  step_s      one steady training step (median of the measured steps)
  periodic_s  the work a step carries when an eval or a profiler's `every` falls on it
  fixed_s     everything else of one run: build, the warm-up steps (one-off costs
              included), the profilers' extra steps after the window, the final eval

A run of W warm-up and S measured steps, calibrated with W_c warm-up steps, is estimated as
  fixed_s + (W + S - W_c) * step_s + n_periodic(W + S) * periodic_s
(conservative: every periodic step is charged the eval and every probe). The whole command
is the time already spent (start-up and calibration), every run still to do, and the work
after the runs (the report, measured by the caller). Every run gets the same S: the
configured steps when they fit, else the largest S that fits; when not even `min_steps`
fit, it says the budget cannot be met and runs at `min_steps` (or, with `strict`, stops
before training: exit 2).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from statistics import median
from typing import Protocol

import torch

from mpbench.config.schema import BudgetConfig, ProfilerSpec, Suite, TrainConfig
from mpbench.data import TokenSource
from mpbench.errors import UserError
from mpbench.plan.spec import RunSpec
from mpbench.profilers import PROFILERS
from mpbench.results.env_card import EnvCard
from mpbench.results.schema import BudgetNote


class Timed(Protocol):
    """What calibration reads from a run record."""

    @property
    def status(self) -> str: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def step_times_ms(self) -> list[float]: ...
    @property
    def hook_time_s(self) -> float: ...


TrainFn = Callable[..., Timed]
"""train_run's signature: (spec, source, device, env, progress, parallel, extra) -> record."""


@dataclass(frozen=True)
class RecipeCost:
    key: str
    """The configuration (cost_key): runs with this key share the cost."""
    fixed_s: float
    step_s: float
    periodic_s: float
    warmup: int = 1
    """Warm-up steps of the calibration run, counted in fixed_s."""

    def run_s(self, warmup: int, steps: int, periods: list[int]) -> float:
        total = warmup + steps
        return (self.fixed_s + max(total - self.warmup, 0) * self.step_s
                + periodic_steps(total, periods) * self.periodic_s)


@dataclass(frozen=True)
class BudgetPlan:
    steps: int
    configured_steps: int
    budget_s: float
    estimate_s: float
    spent_s: float
    after_s: float
    reason: str

    def note(self) -> BudgetNote:
        return BudgetNote(budget_s=self.budget_s, configured_steps=self.configured_steps,
                          steps=self.steps, estimate_s=round(self.estimate_s, 1),
                          calibration_s=round(self.spent_s, 1), reason=self.reason)


def cost_key(spec: RunSpec) -> str:
    """The run's configuration (seeds and repeats share a cost)."""
    return spec.config_key.id


def periodic_steps(total: int, periods: list[int]) -> int:
    """How many of steps 1..total carry an eval or a profiler's periodic probe."""
    if not periods:
        return 0
    return sum(1 for s in range(1, total + 1) if any(s % p == 0 for p in periods))


def periods_of(suite: Suite, train: TrainConfig) -> list[int]:
    """Every k at which a run does extra work: eval_every and profilers' `every` options."""
    periods = [train.eval_every] if train.eval_every else []
    for p in suite.profilers:
        if "every" in PROFILERS[p.name].Options.model_fields:
            periods.append(int(PROFILERS[p.name].Options(**p.options).every))  # type: ignore[attr-defined]
    return periods


def calibration_warmup(spec: RunSpec) -> int:
    """The run's own warm-up, at least one step: steps timed after it are warm."""
    return max(spec.train.warmup_steps, 1)


def calibration_spec(spec: RunSpec, steps: int) -> RunSpec:
    """The same run, short, with its periodic work (eval, probes) at every step."""
    cfg = spec.train.model_copy(update={
        "warmup_steps": calibration_warmup(spec), "steps": steps,
        "eval_every": 1 if spec.train.eval_every else 0})
    profilers = [
        ProfilerSpec(name=p.name, options={**p.options, "every": 1})
        if "every" in PROFILERS[p.name].Options.model_fields else p
        for p in spec.suite.profilers
    ]
    suite = spec.suite.model_copy(update={"profilers": profilers})
    return dataclasses.replace(spec, suite=suite, train_config=cfg)


def bare_spec(spec: RunSpec, steps: int) -> RunSpec:
    """The same run, short, without profilers or eval: the step time and the build."""
    cfg = spec.train.model_copy(update={
        "warmup_steps": calibration_warmup(spec), "steps": steps, "eval_every": 0,
        "eval_batches": 0})
    suite = spec.suite.model_copy(update={"profilers": []})
    return dataclasses.replace(spec, suite=suite, train_config=cfg)


def cost_from_record(key: str, record: Timed, has_periodic: bool, warmup: int = 1) -> RecipeCost:
    """The cost of a recipe from its calibration record (`warmup`: the record's warm-up steps).
    The median step, not the mean: one step slowed by a neighbour or a late one-off cost
    would otherwise be charged to every step of every run."""
    if record.status == "skipped" or not record.step_times_ms:
        # skipped, failed or diverged before its window: what it cost, once per run
        return RecipeCost(key, record.duration_s, 0.0, 0.0, 0)
    steps = record.step_times_ms
    step_s = median(steps) / 1e3
    hook_s = record.hook_time_s / len(steps)
    # everything but the measured steps at their median: build, warm-up, final eval
    fixed = max(record.duration_s - len(steps) * step_s - record.hook_time_s, 0.0)
    if has_periodic:
        return RecipeCost(key, fixed, step_s, hook_s, warmup)
    return RecipeCost(key, fixed, step_s + hook_s, 0.0, warmup)  # hooks ride on every step


def group_key(spec: RunSpec) -> str:
    """The comparison group: the recipes of one model and train setting."""
    return spec.config_key.comparison.id


def fit_line(points: list[tuple[float, float]]) -> Callable[[float], float]:
    """y = a + k * step_s through the measured points (k, a >= 0; one point: constant)."""
    if not points:
        return lambda _t: 0.0
    (t1, y1), (t2, y2) = min(points), max(points)
    k = max((y2 - y1) / (t2 - t1), 0.0) if t2 > t1 else 0.0
    a = max(y1 - k * t1, 0.0) if k > 0 else max(y1, y2)
    return lambda t: a + k * t


def calibrate(specs: Iterable[RunSpec], source: TokenSource, device: torch.device,
              env: EnvCard, train: TrainFn, steps: int,
              on_cost: Callable[[RunSpec, RecipeCost], None] | None = None) -> dict[str, RecipeCost]:
    """Costs by `cost_key`, from short runs through the real training code.

    Every distinct recipe trains a bare short run (no profilers, no eval): its step time,
    build and first-step costs. In each group of one model and train setting, the fastest
    and the slowest recipe also train the full short run (the suite's profilers and eval,
    periodic work at every step); what that adds, per run and per step, is fitted as
    a + k * step_s through those two and given to every recipe of the group by its own
    measured step time (the two bracket the rest: an interpolation).
    """
    firsts: dict[str, RunSpec] = {}
    for spec in specs:
        firsts.setdefault(cost_key(spec), spec)
    costs: dict[str, RecipeCost] = {}
    with tempfile.TemporaryDirectory(prefix="mpbench-calibrate-") as tmp:
        def short(spec: RunSpec) -> Timed:
            return train(spec, source, device, env, extra={"results_dir": tmp})

        def bare_cost(key: str) -> RecipeCost:
            spec = firsts[key]
            return cost_from_record(key, short(bare_spec(spec, steps)), False,
                                    calibration_warmup(spec))

        bare = {key: bare_cost(key) for key in firsts}
        if firsts:  # the process's one-off costs (thread pools, allocator, first kernels) land
            # on whichever recipe calibrates first, once per process, not once per run
            # (gpt-tiny fp32: 1.7 s besides steps cold, 0.3 s warm): time it again, warm
            first = next(iter(firsts))
            bare[first] = bare_cost(first)
        groups: dict[str, list[str]] = {}
        for key, spec in firsts.items():
            groups.setdefault(group_key(spec), []).append(key)
        for keys in groups.values():
            timed = sorted((k for k in keys if bare[k].step_s > 0), key=lambda k: bare[k].step_s)
            ends = sorted({timed[0], timed[-1]}) if timed else []
            per_run, per_step = [], []
            for key in ends:
                full = cost_from_record(key, short(calibration_spec(firsts[key], steps)), False,
                                        calibration_warmup(firsts[key]))
                t = bare[key].step_s
                extra = max(full.step_s - t, 0.0)
                # the full run's warm-up steps carried the periodic work too (run_s charges
                # a run's periodic steps itself, warm-up included): not a per-run cost
                per_run.append((t, max(full.fixed_s - bare[key].fixed_s - full.warmup * extra,
                                       0.0)))
                per_step.append((t, extra))
            run_extra, step_extra = fit_line(per_run), fit_line(per_step)
            for key in keys:
                b, spec = bare[key], firsts[key]
                if b.step_s > 0:
                    t = b.step_s
                    fixed = b.fixed_s + run_extra(t)
                    periodic = bool(periods_of(spec.suite, spec.train))
                    b = (RecipeCost(key, fixed, t, step_extra(t), b.warmup) if periodic
                         else RecipeCost(key, fixed, t + step_extra(t), 0.0, b.warmup))
                costs[key] = b
                if on_cost is not None:
                    on_cost(spec, b)
    return costs


def estimate_s(specs: list[RunSpec], costs: dict[str, RecipeCost], steps: int) -> float:
    return sum(costs[cost_key(s)].run_s(s.train.warmup_steps, steps, periods_of(s.suite, s.train))
               for s in specs)


def plan_steps(specs: list[RunSpec], costs: dict[str, RecipeCost], budget: BudgetConfig,
               configured: int, spent_s: float, after_s: float, where: str) -> BudgetPlan:
    """The same measured steps for every run: the configured ones if they fit, else the most
    that fit; when even `budget.min_steps` do not, those (a UserError with `strict`)."""
    def total(steps: int) -> float:
        return spent_s + after_s + estimate_s(specs, costs, steps)

    full = total(configured)
    if full <= budget.seconds:
        return BudgetPlan(configured, configured, budget.seconds, full, spent_s, after_s,
                          f"the configured {configured} steps fit the budget of "
                          f"{budget.seconds:g} s (estimate {full:.0f} s)")
    floor = min(budget.min_steps, configured)
    if total(floor) > budget.seconds:
        miss = (f"{where}: {budget.seconds:g} s cannot be met on this machine: even {floor} "
                f"steps per run are estimated at {total(floor):.0f} s (calibration and start-up "
                f"{spent_s:.0f} s included)")
        if budget.strict:
            raise UserError(f"{miss}; raise {where}.seconds, lower {where}.min_steps, or run "
                            "fewer recipes with --only")
        return BudgetPlan(floor, configured, budget.seconds, total(floor), spent_s, after_s,
                          f"{miss}; running every run at the floor of {floor} steps (set "
                          f"{where}.strict to stop instead)")
    lo, hi = floor, configured  # total() grows with steps: the largest that fits
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if total(mid) <= budget.seconds else (lo, mid)
    est = total(lo)
    return BudgetPlan(lo, configured, budget.seconds, est, spent_s, after_s,
                      f"scaled from {configured} to {lo} steps for every run to fit the budget "
                      f"of {budget.seconds:g} s: {configured} steps were estimated at "
                      f"{full:.0f} s, {lo} at {est:.0f} s (calibrated on this machine)")


def with_steps(suite: Suite, steps: int) -> Suite:
    return suite.model_copy(update={"train": suite.train.model_copy(update={"steps": steps})})


def seconds_since_start() -> float:
    """Wall time since this process started (Linux /proc; else since this module loaded)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        return max(uptime - start_ticks / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _LOADED


_LOADED = time.perf_counter()
