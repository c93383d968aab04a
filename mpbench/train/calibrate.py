"""Hold a suite to its device profile's time budget, by measurement on the machine it meets.

Before the first run every distinct recipe (model x precision x train setting; seeds share
it) trains one short calibration run through the same code as a real run: model build, one
warm-up step, `calibration_steps` measured steps, the suite's profilers (with their periodic
work, eval included, made to happen at every step) and the final eval. From its record:

  step_s      one steady training step (mean of the measured steps)
  periodic_s  the work a step carries when an eval or a profiler's `every` falls on it
  fixed_s     everything else of one run: build, the first step's one-off costs, the
              profilers' extra steps after the window, the final eval

A run of W warm-up and S measured steps is estimated as
  fixed_s + (W + S - 1) * step_s + n_periodic(W + S) * periodic_s
(conservative: every periodic step is charged the eval and every probe). The whole command
is the time already spent (start-up and calibration), every run still to do, and the work
after the runs (the report, measured by the caller). Every run gets the same S: the
configured steps when they fit, else the largest S that fits; below `min_steps` the run
stops before training and says the budget cannot be met.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from mpbench.config.budget import BudgetConfig
from mpbench.config.schema import PrecisionSpec, Suite, TrainConfig
from mpbench.data.base import TokenSource
from mpbench.errors import UserError
from mpbench.profile import PROFILERS
from mpbench.results.schema import BudgetNote
from mpbench.train.spec import RunSpec


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
    """The run id without its seed: runs with this key share the cost."""
    fixed_s: float
    step_s: float
    periodic_s: float

    def run_s(self, warmup: int, steps: int, periods: list[int]) -> float:
        total = warmup + steps
        return (self.fixed_s + max(total - 1, 0) * self.step_s
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
    return spec.run_id.rsplit("__seed", 1)[0]


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


def calibration_spec(spec: RunSpec, steps: int) -> RunSpec:
    """The same run, short, with its periodic work (eval, probes) at every step."""
    cfg = spec.train.model_copy(update={
        "warmup_steps": 1, "steps": steps, "eval_every": 1 if spec.train.eval_every else 0})
    profilers = [
        PrecisionSpec(name=p.name, options={**p.options, "every": 1})
        if "every" in PROFILERS[p.name].Options.model_fields else p
        for p in spec.suite.profilers
    ]
    suite = spec.suite.model_copy(update={"profilers": profilers})
    return dataclasses.replace(spec, suite=suite, train_config=cfg)


def cost_from_record(key: str, record: Timed, has_periodic: bool) -> RecipeCost:
    if record.status == "skipped" or not record.step_times_ms:
        # skipped, failed or diverged before its window: what it cost, once per run
        return RecipeCost(key, record.duration_s, 0.0, 0.0)
    steps = record.step_times_ms
    step_s = sum(steps) / len(steps) / 1e3
    hook_s = record.hook_time_s / len(steps)
    fixed = max(record.duration_s - sum(steps) / 1e3 - record.hook_time_s, 0.0)
    if has_periodic:
        return RecipeCost(key, fixed, step_s, hook_s)
    return RecipeCost(key, fixed, step_s + hook_s, 0.0)  # hooks ride on every step


def calibrate(specs: Iterable[RunSpec], source: TokenSource, device: torch.device,
              env: dict[str, Any], train: TrainFn, steps: int,
              on_cost: Callable[[RunSpec, RecipeCost], None] | None = None) -> dict[str, RecipeCost]:
    """One short run per distinct recipe of `specs`; costs by `cost_key`."""
    costs: dict[str, RecipeCost] = {}
    with tempfile.TemporaryDirectory(prefix="mpbench-calibrate-") as tmp:
        for spec in specs:
            key = cost_key(spec)
            if key in costs:
                continue
            short = calibration_spec(spec, steps)
            record = train(short, source, device, env, extra={"results_dir": tmp})
            costs[key] = cost_from_record(key, record, bool(periods_of(spec.suite, spec.train)))
            if on_cost is not None:
                on_cost(spec, costs[key])
    return costs


def estimate_s(specs: list[RunSpec], costs: dict[str, RecipeCost], steps: int) -> float:
    return sum(costs[cost_key(s)].run_s(s.train.warmup_steps, steps, periods_of(s.suite, s.train))
               for s in specs)


def plan_steps(specs: list[RunSpec], costs: dict[str, RecipeCost], budget: BudgetConfig,
               configured: int, spent_s: float, after_s: float, where: str) -> BudgetPlan:
    """The same measured steps for every run: the configured ones if they fit, else the most
    that fit; a UserError when even `budget.min_steps` does not."""
    def total(steps: int) -> float:
        return spent_s + after_s + estimate_s(specs, costs, steps)

    full = total(configured)
    if full <= budget.seconds:
        return BudgetPlan(configured, configured, budget.seconds, full, spent_s, after_s,
                          f"the configured {configured} steps fit the budget of "
                          f"{budget.seconds:g} s (estimate {full:.0f} s)")
    floor = min(budget.min_steps, configured)
    if total(floor) > budget.seconds:
        raise UserError(
            f"{where}: {budget.seconds:g} s cannot be met on this machine: even "
            f"{floor} steps per run are estimated at {total(floor):.0f} s (calibration and "
            f"start-up {spent_s:.0f} s included); raise {where}.seconds, lower "
            f"{where}.min_steps, or run fewer recipes with --only")
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

__all__ = ["BudgetPlan", "RecipeCost", "calibrate", "cost_from_record", "estimate_s",
           "plan_steps", "seconds_since_start", "with_steps"]
