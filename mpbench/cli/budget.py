"""`mpbench run` under a device profile's time budget: calibrate, choose steps, say so."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from mpbench.bench.timing import time_probe
from mpbench.config.schema import Suite
from mpbench.data import TokenSource, make_source
from mpbench.errors import UserError
from mpbench.plan.spec import RunSpec
from mpbench.results.env_card import EnvCard
from mpbench.results.schema import BudgetNote, RunRecord
from mpbench.results.store import MANIFEST, ResultsDir, load_records
from mpbench.train.calibrate import (
    RecipeCost,
    calibrate,
    cost_key,
    estimate_s,
    periods_of,
    plan_steps,
    seconds_since_start,
    with_steps,
)
from mpbench.train.loop import train_run
from mpbench.train.runner import expand, select

OVERRUN = 1.15
"""Took this much more than estimated: say the machine changed, not only the figures."""
PAID = 1.25
"""A run that took this much more than its own estimate (and a second more) is named."""


@dataclass
class Budgeted:
    suite: Suite
    specs: list[RunSpec]
    note: BudgetNote | None = None
    source: TokenSource | None = None
    costs: dict[str, RecipeCost] | None = None

    def note_for(self, spec: RunSpec) -> BudgetNote | None:
        """The suite's note with this run's own estimate: what it took is its duration_s."""
        if self.note is None or self.costs is None:
            return self.note
        cost = self.costs[cost_key(spec)]
        run_s = cost.run_s(spec.train.warmup_steps, spec.train.steps, periods_of(spec.suite, spec.train))
        return self.note.model_copy(update={"run_estimate_s": round(run_s, 2)})


def apply_budget(suite: Suite, specs: list[RunSpec], only: tuple[str, ...], suite_file: Path,
                 device: torch.device, env: EnvCard, console: Console, out: Path,
                 resume: bool, report: bool, skipped: set[str]) -> Budgeted:
    """The suite with every run's steps chosen to fit `suite.budget` (unchanged without one).
    `skipped`: the run ids that skip here (named by the caller; nothing to time)."""
    budget = suite.budget
    if budget is None:
        return Budgeted(suite, specs)
    where = f"devices.{suite.profile}.budget" if suite.profile != "default" else "budget"
    if "steps" in suite.matrix:
        raise UserError(f"{suite_file}: matrix.steps: a budget scales steps itself; remove "
                        "one of matrix.steps and budget")
    recorded = _recorded_steps(out) if resume else None
    if recorded is not None:  # a resumed suite keeps the steps its recorded runs have
        planned = with_steps(suite, recorded)
        console.print(f"budget: resuming with the {recorded} steps of the recorded runs",
                      highlight=False)
        note = BudgetNote(budget_s=budget.seconds, configured_steps=suite.train.steps,
                          steps=recorded, estimate_s=0.0, calibration_s=0.0,
                          reason=f"resumed: keeps the {recorded} steps of the recorded runs")
        return Budgeted(planned, select(expand(planned), only), note)
    source = make_source(suite.data, suite_file.parent)
    distinct = {cost_key(s): s for s in specs if s.run_id not in skipped}
    timed = len(distinct)
    console.print(f"budget {budget.seconds:g} s: calibrating {timed} "
                  f"recipe{'' if timed == 1 else 's'} ({budget.calibration_steps} steps each) "
                  "on this machine", highlight=False)
    records: list[Any] = []

    def train(spec: RunSpec, *args: Any, **kwargs: Any) -> RunRecord:
        record = train_run(spec, *args, **kwargs)
        records.append(record)
        return record

    def said(spec: RunSpec, cost: RecipeCost) -> None:
        if cost.step_s <= 0:  # skipped or failed here: said above, or by the run itself
            return
        one = cost.run_s(spec.train.warmup_steps, spec.train.steps, [])
        console.print(f"  {spec.model_label} {spec.precision.name}: {cost.step_s:.3f} s/step, "
                      f"{cost.fixed_s:.1f} s per run besides steps (~{one:.0f} s a run)",
                      highlight=False)

    costs = calibrate(specs, source, device, env, train, budget.calibration_steps, said)
    t0 = time.perf_counter()
    probe = time_probe(device)  # the machine the estimate is made on, as every run is probed
    probes_s = 2 * (time.perf_counter() - t0) * (len(specs) - len(skipped))  # before and after
    after_s = probes_s + (_report_seconds(records, len(specs)) if report else 0.0)
    plan = plan_steps(specs, costs, budget, suite.train.steps, seconds_since_start(), after_s,
                      where)
    planned = with_steps(suite, plan.steps)
    runs_s = estimate_s(specs, costs, plan.steps)
    console.print(f"budget: {plan.steps} measured steps per run (configured "
                  f"{plan.configured_steps}); estimated {plan.estimate_s:.0f} s in all = "
                  f"{plan.spent_s:.0f} s start-up and calibration + {runs_s:.0f} s runs + "
                  f"{after_s:.0f} s drift probes and report", highlight=False)
    console.print(f"budget: {plan.reason}", highlight=False)
    note = plan.note().model_copy(update={"calibration_probe": probe})
    return Budgeted(planned, select(expand(planned), only), note, source, costs)


def report_budget(console: Console, note: BudgetNote | None,
                  records: list[RunRecord] | None = None) -> None:
    """After the suite: what it took against the estimate and the budget; when it overran,
    by how much the machine slowed since calibration (drift probe) and which runs paid."""
    if note is None or note.estimate_s == 0.0:
        return
    took = seconds_since_start()
    console.print(f"budget: took {took:.0f} s (estimated {note.estimate_s:.0f} s, budget "
                  f"{note.budget_s:g} s)", highlight=False)
    if not (took > note.budget_s and took > OVERRUN * note.estimate_s):
        return
    # calibration measures the machine once, before the runs: a machine that got busier
    # afterwards (another job, a noisy neighbour) makes every run slower than planned
    console.print(f"budget: {took / note.estimate_s - 1:.0%} over the estimate: the "
                  "machine ran slower than when it was calibrated (was something else "
                  "running?); the measurements of a busy machine vary more between runs",
                  highlight=False)
    for line in drift_lines(note, records or []):
        console.print(f"budget: {line}", highlight=False, soft_wrap=True)


def drift_lines(note: BudgetNote, records: list[RunRecord]) -> list[str]:
    """The drift probe against its timing at calibration, and the runs that took well over
    their own estimate (with the probe around each)."""
    lines = []
    probed = [r.probe for r in records if r.probe is not None]
    if note.calibration_probe is not None and probed:
        at = note.calibration_probe.score_ms
        scores = sorted(p.score_ms for p in probed)
        mid = scores[len(scores) // 2]
        lines.append(f"the drift probe took {at:.2f} ms at calibration and {mid:.2f} ms (median; "
                     f"slowest {scores[-1]:.2f} ms) around the runs: the machine was "
                     f"{mid / at - 1:+.0%} ({scores[-1] / at - 1:+.0%} at worst) against "
                     "calibration")
    paid = []
    for r in records:
        est = r.budget.run_estimate_s if r.budget is not None else None
        if est and r.duration_s > PAID * est and r.duration_s - est > 1.0:
            probe = (f", probe {r.probe.score_ms / note.calibration_probe.score_ms - 1:+.0%}"
                     if r.probe is not None and note.calibration_probe is not None else "")
            paid.append((r.duration_s - est, f"{r.run_id} {r.duration_s:.1f} s against "
                                              f"{est:.1f} s ({r.duration_s / est - 1:+.0%}{probe})"))
    if paid:
        paid.sort(reverse=True)
        shown = "; ".join(text for _, text in paid[:8])
        more = f"; and {len(paid) - 8} more" if len(paid) > 8 else ""
        lines.append(f"{len(paid)} of {len(records)} runs took over {PAID - 1:.0%} more than "
                     f"their estimate: {shown}{more}")
    return lines


def _recorded_steps(out: Path) -> int | None:
    if not (out / MANIFEST).is_file():
        return None
    steps = {int(r.train["steps"]) for r in load_records(out) if r.status == "ok"}
    return steps.pop() if len(steps) == 1 else None


def _report_seconds(records: list[RunRecord], runs: int) -> float:
    """The report's time, measured on the calibration records, scaled to the runs' count."""
    try:
        from mpbench.report import write_report
    except ImportError:
        return 0.0
    if not records:
        return 0.0
    with tempfile.TemporaryDirectory(prefix="mpbench-calibrate-report-") as tmp:
        results = ResultsDir(Path(tmp))
        results.create(records[0].suite, records[0].suite_config, "")
        for record in records:
            results.write(record)
        t0 = time.perf_counter()
        try:
            write_report([Path(tmp)], Path(tmp) / "report.html")
        except Exception:  # a report bug shows after the runs, with its fix
            return 0.0
        written = len({r.run_id for r in records})  # bare and full runs share a file
        return (time.perf_counter() - t0) * max(runs / written, 1.0)
