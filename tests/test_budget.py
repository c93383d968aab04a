"""The time budget: calibration gives every recipe the same steps and keeps the whole suite,
calibration included, within the budget, on a fake clock with a fake slow recipe."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from mpbench.config.schema import BudgetConfig, Suite
from mpbench.errors import UserError
from mpbench.plan.spec import RunSpec, expand
from mpbench.train.calibrate import (
    RecipeCost,
    calibrate,
    calibration_spec,
    cost_from_record,
    cost_key,
    estimate_s,
    periodic_steps,
    plan_steps,
    with_steps,
)

pytestmark = pytest.mark.unit

# The fake machine: per-step seconds and per-run overhead of each recipe. fp16 is the slow
# one (20x fp32's step), as 16-bit recipes are on a CPU without a native 16-bit path.
STEP_S = {"fp32": 0.05, "bf16": 0.1, "fp16": 1.0}
BUILD_S = {"fp32": 0.5, "bf16": 0.6, "fp16": 0.7}  # model build, first-step one-offs
PROFILER_STEPS = 4.0  # the profilers' extra steps after the window, the final eval
PERIODIC_STEPS = 0.3  # an eval or probe on a step that carries one, in steps


@dataclass
class FakeRecord:
    status: str
    duration_s: float
    step_times_ms: list[float]
    hook_time_s: float


class FakeMachine:
    """Trains nothing: advances a fake clock by what the run would take and returns its record."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[RunSpec] = []

    def train(self, spec: RunSpec, source: Any, device: Any, env: Any, progress: Any = None,
              parallel: Any = None, extra: Any = None) -> FakeRecord:
        self.calls.append(spec)
        cfg, name = spec.train, spec.precision.name
        step = STEP_S[name]
        every = [cfg.eval_every] if cfg.eval_every else []
        every += [p.options["every"] for p in spec.suite.profilers if "every" in p.options]
        total = cfg.warmup_steps + cfg.steps
        periodic = periodic_steps(total, every) * PERIODIC_STEPS * step
        measured_periodic = sum(1 for s in range(cfg.warmup_steps + 1, total + 1)
                                if any(s % p == 0 for p in every)) * PERIODIC_STEPS * step
        extra = PROFILER_STEPS * step if spec.suite.profilers or cfg.eval_batches else 0.0
        duration = BUILD_S[name] + extra + total * step + periodic
        self.now += duration
        return FakeRecord("ok", duration, [step * 1e3] * cfg.steps, measured_periodic)


def suite(steps: int = 100, budget: float = 120.0, min_steps: int = 5) -> Suite:
    return Suite.model_validate({
        "name": "b", "models": ["gpt-tiny"], "precisions": ["fp32", "bf16", "fp16"],
        "seeds": [0, 1], "train": {"steps": steps, "warmup_steps": 2, "eval_every": 10},
        "profilers": [{"name": "numerics", "options": {"every": 25}}],
        "budget": {"seconds": budget, "min_steps": min_steps},
    })


def run_plan(s: Suite, startup_s: float = 2.0) -> tuple[Any, FakeMachine, list[RunSpec]]:
    machine = FakeMachine()
    machine.now = startup_s
    specs = expand(s)
    assert s.budget is not None
    costs = calibrate(specs, None, None, {}, machine.train, s.budget.calibration_steps)  # type: ignore[arg-type]
    plan = plan_steps(specs, costs, s.budget, s.train.steps, machine.now, 0.0, "budget")
    planned = expand(with_steps(s, plan.steps))
    for spec in planned:  # the suite itself, on the same fake clock
        machine.train(spec, None, None, {})
    return plan, machine, planned


def test_calibration_gives_every_recipe_the_same_steps_and_holds_the_budget() -> None:
    plan, machine, planned = run_plan(suite(steps=100, budget=120.0))
    assert 5 <= plan.steps < 100  # 100 steps would take far longer (fp16 alone: 2 x 100 s)
    assert {s.train.steps for s in planned} == {plan.steps}
    assert {s.precision.name for s in planned} == {"fp32", "bf16", "fp16"}  # none dropped
    assert machine.now <= 120.0  # calibration and start-up included
    assert plan.estimate_s <= 120.0
    assert plan.estimate_s >= machine.now - 1e-6  # the estimate is not optimistic
    assert "scaled from 100 to" in plan.reason
    note = plan.note()
    assert note.steps == plan.steps and note.configured_steps == 100


def test_calibration_runs_per_recipe_not_per_seed() -> None:
    _, machine, planned = run_plan(suite())
    calibrations = machine.calls[: len(machine.calls) - len(planned)]
    bare = [c for c in calibrations if not c.suite.profilers]
    full = [c for c in calibrations if c.suite.profilers]
    # every recipe once, and the first (fp32) again: its first timing paid the process's
    # one-off costs, which no later run pays
    assert sorted(c.precision.name for c in bare) == ["bf16", "fp16", "fp32", "fp32"]
    for c in bare:  # short, no profilers, no eval; warm-up as long as the run's own (2)
        assert (c.train.warmup_steps, c.train.steps, c.train.eval_batches) == (2, 3, 0)
    # the fastest and the slowest recipe also run with profilers and eval, periodic work on
    # every step; the recipe between them is interpolated
    assert sorted(c.precision.name for c in full) == ["fp16", "fp32"]
    for c in full:
        assert (c.train.warmup_steps, c.train.steps, c.train.eval_every) == (2, 3, 1)
        assert c.suite.profilers[0].options["every"] == 1


def test_interpolated_cost_matches_a_linear_machine() -> None:
    s = suite()
    specs = expand(s)
    costs = calibrate(specs, None, None, {}, FakeMachine().train, 2)  # type: ignore[arg-type]
    spec = next(s for s in specs if s.precision.name == "bf16")
    bf16 = costs[cost_key(spec)]  # never run with profilers
    assert bf16.step_s == pytest.approx(0.1)
    # fixed: build, the profilers' extra steps and the run's 2 warm-up steps; the warm-up's
    # periodic work is charged by run_s with every other periodic step, not twice
    assert bf16.warmup == 2
    assert bf16.fixed_s == pytest.approx(BUILD_S["bf16"] + (PROFILER_STEPS + 2) * 0.1)
    assert bf16.periodic_s == pytest.approx(PERIODIC_STEPS * 0.1)
    # so the estimate of a whole run is what the (linear) machine takes
    machine = FakeMachine()
    assert bf16.run_s(2, 100, [10, 25]) == pytest.approx(machine.train(spec, None, None, {}).duration_s)


def test_configured_steps_kept_when_they_fit() -> None:
    plan, machine, planned = run_plan(suite(steps=10, budget=1000.0))
    assert plan.steps == 10 and "fit the budget" in plan.reason
    assert {s.train.steps for s in planned} == {10}
    assert machine.now <= 1000.0


def test_a_budget_below_the_floor_says_so() -> None:
    machine = FakeMachine()
    s = suite(steps=100, budget=20.0, min_steps=10)
    specs = expand(s)
    costs = calibrate(specs, None, None, {}, machine.train, 2)  # type: ignore[arg-type]
    with pytest.raises(UserError, match=r"devices.cpu.budget: 20 s cannot be met .* 10 steps"):
        plan_steps(specs, costs, BudgetConfig(seconds=20, min_steps=10, strict=True), 100,
                   machine.now, 0.0, "devices.cpu.budget")
    plan = plan_steps(specs, costs, BudgetConfig(seconds=20, min_steps=10), 100, machine.now,
                      0.0, "devices.cpu.budget")
    assert plan.steps == 10 and plan.estimate_s > 20
    assert "cannot be met" in plan.reason and "at the floor of 10 steps" in plan.reason


def test_cost_model_from_a_calibration_record() -> None:
    rec = FakeRecord("ok", duration_s=5.0, step_times_ms=[1000.0, 1000.0], hook_time_s=0.6)
    cost = cost_from_record("k", rec, has_periodic=True)
    # the median step: one step slowed by a neighbour is not charged to every step
    slowed = FakeRecord("ok", duration_s=8.0, step_times_ms=[1000.0, 4000.0, 1000.0], hook_time_s=0.0)
    assert cost_from_record("k", slowed, has_periodic=False, warmup=2).step_s == pytest.approx(1.0)
    assert cost_from_record("k", slowed, has_periodic=False, warmup=2).fixed_s == pytest.approx(5.0)
    assert cost.step_s == pytest.approx(1.0) and cost.periodic_s == pytest.approx(0.3)
    assert cost.fixed_s == pytest.approx(5.0 - 2.0 - 0.6)
    # no periodic work: the hooks ride on every step
    flat = cost_from_record("k", rec, has_periodic=False)
    assert flat.step_s == pytest.approx(1.3) and flat.periodic_s == 0.0
    skipped = cost_from_record("k", FakeRecord("skipped", 0.01, [], 0.0), has_periodic=True)
    assert skipped.run_s(3, 100, [10]) == pytest.approx(0.01)
    assert RecipeCost("k", 1.0, 0.5, 0.2).run_s(2, 10, [5]) == pytest.approx(1.0 + 11 * 0.5 + 2 * 0.2)


def test_periodic_steps_count_each_step_once() -> None:
    assert periodic_steps(20, []) == 0
    assert periodic_steps(20, [10]) == 2
    assert periodic_steps(20, [4, 10]) == 6  # 4 8 10 12 16 20


def test_estimate_grows_with_steps() -> None:
    s = suite()
    specs = expand(s)
    costs = calibrate(specs, None, None, {}, FakeMachine().train, 2)  # type: ignore[arg-type]
    assert estimate_s(specs, costs, 10) < estimate_s(specs, costs, 50)


def test_calibration_spec_keeps_the_run_but_short() -> None:
    spec = expand(suite())[0]
    short = calibration_spec(spec, 3)
    assert short.run_id == spec.run_id and short.precision == spec.precision
    assert short.train.steps == 3 and short.train.batch_size == spec.train.batch_size


def test_budget_config_is_validated_at_load(tmp_path: Any) -> None:
    from mpbench.train.load import load_suite

    path = tmp_path / "s.yaml"
    path.write_text("name: s\nmodels: [gpt-tiny]\nprecisions: [fp32]\n"
                    "devices:\n  cpu:\n    budget: {seconds: -1}\n")
    with pytest.raises(UserError, match=r"devices.cpu.budget.seconds"):
        load_suite(path, "cpu")


@pytest.mark.integration
def test_run_under_a_budget_prints_and_records_the_choice(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from mpbench.cli.main import cli
    from mpbench.results.store import load_records

    path = tmp_path / "b.yaml"
    path.write_text(
        "name: b\nmodels: [gpt-tiny]\nprecisions: [fp32, bf16]\nseeds: [0, 1]\n"
        "train: {batch_size: 2, seq_len: 16, steps: 6, warmup_steps: 1, eval_batches: 1}\n"
        "data: {source: synthetic, vocab_size: 32}\n"
        "devices:\n  cpu:\n    budget: {seconds: 3600, min_steps: 2}\n", encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["run", str(path), "--device", "cpu", "-o", str(out), "-q",
                                      "--no-report"])
    assert result.exit_code == 0, result.output
    assert "budget 3600 s: calibrating 2 recipes" in result.stdout
    assert "budget: 6 measured steps per run (configured 6); estimated" in result.stdout
    assert "budget: took" in result.stdout
    records = load_records(out)
    assert len(records) == 4 and all(len(r.step_times_ms) == 6 for r in records)
    for r in records:
        assert r.budget is not None and r.budget.steps == 6 and r.budget.budget_s == 3600
        assert "fit the budget" in r.budget.reason


@pytest.mark.integration
def test_calibration_counts_and_names_only_what_runs_here(tmp_path: Any) -> None:
    from click.testing import CliRunner

    from mpbench.cli.main import cli

    path = tmp_path / "b.yaml"
    path.write_text(
        "name: b\nmodels: [gpt-tiny]\nprecisions: [fp32, tf32]\nseeds: [0]\n"
        "train: {batch_size: 2, seq_len: 16, steps: 3, warmup_steps: 1, eval_batches: 1}\n"
        "data: {source: synthetic, vocab_size: 32}\n"
        "devices:\n  cpu:\n    budget: {seconds: 3600, min_steps: 2}\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["run", str(path), "--device", "cpu", "-o",
                                      str(tmp_path / "out"), "-q", "--no-report"])
    assert result.exit_code == 0, result.output
    # tf32 needs a CUDA GPU: it is named once as skipped, not counted as calibrated
    assert "calibrating 1 recipe (3 steps each)" in result.stdout
    # named once before the runs and once under the summary, with its reason
    assert result.stdout.count("skipped here, needs a CUDA GPU; this run is on cpu: tf32") == 2
    assert "gpt-tiny tf32:" not in result.stdout  # no cost line for it
    # the progress shows the run that trains, numbered among the runs that train
    assert "1 run to train, 1 skipped here" in result.stdout
    assert "[1/1] gpt-tiny fp32 seed 0: ok" in result.stdout and "tf32 seed 0" not in result.stdout
    # the skipped run trains nothing, so nothing probes the machine around it
    from mpbench.results.store import load_records

    probes = {r.precision: r.probe for r in load_records(tmp_path / "out")}
    assert probes["tf32"] is None and probes["fp32"] is not None


@pytest.mark.unit
@pytest.mark.parametrize(("took", "warned"), [(100.0, False), (180.0, False), (260.0, True)])
def test_an_overrun_says_the_machine_changed(monkeypatch: Any, took: float,
                                            warned: bool) -> None:
    from rich.console import Console

    from mpbench.cli import budget as cli_budget
    from mpbench.results.schema import BudgetNote

    monkeypatch.setattr(cli_budget, "seconds_since_start", lambda: took)
    console = Console(record=True, width=200)
    note = BudgetNote(budget_s=175, configured_steps=20, steps=8, estimate_s=170,
                      calibration_s=40, reason="scaled")
    cli_budget.report_budget(console, note)
    text = console.export_text()
    assert f"budget: took {took:.0f} s (estimated 170 s, budget 175 s)" in text
    assert ("over the estimate" in text) is warned
    if warned:
        assert "53% over the estimate" in text


@pytest.mark.unit
def test_an_overrun_names_the_drift_and_the_runs_that_paid(monkeypatch: Any) -> None:
    """The convergence suite took 366 s against an estimate of 279 s beside another process:
    the drift probe against its calibration timing says by how much the machine slowed, and
    the runs that took well over their own estimate are named, worst first."""
    from fixture_records import record
    from rich.console import Console

    from mpbench.cli import budget as cli_budget
    from mpbench.results.schema import BudgetNote, DriftProbe, ProbeTimes

    at_calibration = ProbeTimes(matmul_ms=1.0, copy_ms=4.0)  # score 2.0 ms
    note = BudgetNote(budget_s=280, configured_steps=200, steps=75, estimate_s=279,
                      calibration_s=40, reason="scaled", calibration_probe=at_calibration)

    def run(precision: str, took: float, estimate: float, slower: float) -> Any:
        probe = ProbeTimes(matmul_ms=1.0 * slower, copy_ms=4.0 * slower)
        return record(precision).model_copy(update={
            "duration_s": took, "probe": DriftProbe(before=probe, after=probe),
            "budget": note.model_copy(update={"run_estimate_s": estimate})})

    records = [run("fp32", 10.0, 9.5, 1.0), run("bf16", 60.0, 30.0, 1.5),
               run("fp16", 45.0, 30.0, 1.4), run("fp8-emulated", 10.5, 10.0, 1.0)]
    lines = cli_budget.drift_lines(note, records)
    assert lines[0].startswith("the drift probe took 2.00 ms at calibration and 2.80 ms "
                               "(median; slowest 3.00 ms)")
    assert "+40% (+50% at worst) against calibration" in lines[0]
    assert lines[1].startswith("2 of 4 runs took over 25% more than their estimate: ")
    assert lines[1].index("bf16") < lines[1].index("fp16")  # the one that paid most first
    assert "60.0 s against 30.0 s (+100%, probe +50%)" in lines[1]
    assert "fp32" not in lines[1] and "fp8-emulated" not in lines[1]
    monkeypatch.setattr(cli_budget, "seconds_since_start", lambda: 366.0)
    console = Console(record=True, width=300)
    cli_budget.report_budget(console, note, records)
    text = console.export_text()
    assert "budget: took 366 s (estimated 279 s, budget 280 s)" in text
    assert "budget: the drift probe took" in text and "budget: 2 of 4 runs took" in text
