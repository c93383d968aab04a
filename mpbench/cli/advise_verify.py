"""`mpbench advise --verify`: train the baseline, the recipe on every linear layer and the recipe
on the advised layers, each `repeats` times in fresh processes (interleaved, as `mpbench run
--repeats` does), then set the prediction against the measured run-level ratios and store the
prediction error with the advice. A miss is shown as one, with the waterfall of those runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from mpbench.analysis import advice as logic
from mpbench.analysis.stats import Interval, step_time_ratio
from mpbench.analysis.waterfall import waterfalls
from mpbench.cli.explain import waterfall_lines
from mpbench.cli.results_out import check_out_dir, default_out, write_report_if_available
from mpbench.config.schema import PrecisionSpec, ProfilerSpec, Suite
from mpbench.plan.spec import RunSpec, expand
from mpbench.results.advice import AdviceRecord, MeasuredRatio, Verification, write_advice
from mpbench.results.env_card import EnvCard
from mpbench.results.key import options_tag
from mpbench.results.schema import RunRecord
from mpbench.results.store import ResultsDir, load_records
from mpbench.train.runner import run_suite


def _measured(r: Interval | None) -> MeasuredRatio | None:
    if r is None:
        return None
    return MeasuredRatio(value=r.value, low=r.low, high=r.high, n_base_runs=r.n_base,
                         n_new_runs=r.n_new, basis=r.basis)


def _times(records: list[RunRecord], precision: str) -> list[list[float]]:
    return [r.step_times_ms for r in records
            if r.status == "ok" and r.config_key.recipe_id == precision and r.step_times_ms]


def prepare_out(out: Path | None, suite: Suite, model: str, recipe: str) -> Path:
    """The --verify results directory, refused now if it already holds results."""
    out = out or default_out(f"advise-{model}-{recipe}")
    check_out_dir(out, f"{suite.name}-advise", resume=False)
    return out


def verification(records: list[RunRecord], rec: AdviceRecord, options: dict[str, Any],
                 base_options: dict[str, Any], repeats: int, where: str) -> Verification:
    """The prediction against the trained runs: run-level ratios, errors and verdicts."""
    base = _times(records, rec.baseline + options_tag(base_options))
    every = step_time_ratio(base, _times(records, rec.recipe + options_tag(options)))
    advised_tag = options_tag({**options, rec.filter_option: rec.filter_value})
    advised = (every if len(rec.advised) == len(rec.layers)
               else step_time_ratio(base, _times(records, rec.recipe + advised_tag)))
    all_check = logic.Check(rec.predicted_all, every)
    adv_check = logic.Check(rec.predicted_advised, advised)
    tol = logic.PREDICTION_TOLERANCE
    return Verification(
        results_dir=where, repeats=repeats, measured_all=_measured(every),
        measured_advised=_measured(advised), error_all=all_check.error,
        error_advised=adv_check.error, tolerance=tol, miss_all=all_check.miss(tol),
        miss_advised=adv_check.miss(tol), verdict_all=all_check.verdict(tol),
        verdict_advised=adv_check.verdict(tol),
        advised_slower_than_all=logic.slower_beyond_interval(advised, every),
        note=("the advised set is every layer: measured once" if advised is every else ""))


def verification_suite(suite: Suite, spec: RunSpec, rec: AdviceRecord, options: dict[str, Any],
                       base_options: dict[str, Any], repeats: int) -> Suite:
    precisions = [PrecisionSpec(name=rec.baseline, options=base_options),
                  PrecisionSpec(name=rec.recipe, options=options)]
    if len(rec.advised) != len(rec.layers):
        precisions.append(PrecisionSpec(
            name=rec.recipe, options={**options, rec.filter_option: rec.filter_value}))
    profilers = [p for p in suite.profilers if p.name != "tensor_cores"]
    profilers.append(ProfilerSpec(name="tensor_cores"))  # the waterfall of a miss reads it
    return suite.model_copy(update={
        "name": f"{suite.name}-advise", "models": [spec.model], "precisions": precisions,
        "repeats": repeats, "seeds": suite.seeds[:1], "matrix": {}, "parallel": None,
        "budget": None, "profilers": profilers})


def run_verification(console: Console, suite: Suite, suite_file: Path, spec: RunSpec,
                     rec: AdviceRecord, options: dict[str, Any], repeats: int,
                     device: torch.device, env: EnvCard, out: Path) -> AdviceRecord:
    """Train the three configurations into `out` (checked by `prepare_out` before the advisor
    spent its time), then store the advice with its verification there."""
    base_options = next((dict(p.options) for p in suite.precisions if p.name == rec.baseline), {})
    vsuite = verification_suite(suite, spec, rec, options, base_options, repeats)
    results = ResultsDir(out)
    results.create(vsuite.name, vsuite.model_dump(mode="json"),
                   suite_file.read_text(encoding="utf-8"))
    specs = expand(vsuite)
    console.print(f"verifying: {len(specs)} runs ({repeats} per configuration, each in a fresh "
                  f"process, {vsuite.train.steps} measured steps) -> {out}", highlight=False)
    for event in run_suite(vsuite, results, device, env, specs, False, lambda s: None,
                           suite_file.parent, isolate=True):
        r = event.record
        if r is not None:
            median = f"{r.step_stats.median_ms:.2f} ms/step" if r.step_stats else r.reason
            console.print(f"  {event.index + 1}/{event.total} {r.run_id}: {r.status}, {median}",
                          highlight=False, markup=False)
    records = load_records(out)
    ver = verification(records, rec, options, base_options, repeats, str(out.resolve()))
    rec = rec.model_copy(update={"verification": ver})
    write_advice(out, rec)
    print_verification(console, rec)
    if ver.miss_all or ver.miss_advised:
        found, _ = waterfalls(records, rec.baseline)
        for w in found:
            for line in waterfall_lines(w):
                console.print(line, highlight=False, markup=False)
    write_report_if_available(console, out)
    return rec


def _ratio_text(m: MeasuredRatio | None) -> str:
    if m is None:
        return "not measured (runs failed)"
    ci = f" [{m.low:.3f}, {m.high:.3f}]" if m.low is not None and m.high is not None else ""
    return f"x{m.value:.3f}{ci} ({m.n_base_runs} vs {m.n_new_runs} runs)"


def print_verification(console: Console, rec: AdviceRecord) -> None:
    v = rec.verification
    assert v is not None
    for what, pred, meas, err, verdict in (
            ("every layer", rec.predicted_all, v.measured_all, v.error_all, v.verdict_all),
            ("advised set", rec.predicted_advised, v.measured_advised, v.error_advised,
             v.verdict_advised)):
        verdict = verdict.upper() if verdict == "miss" else verdict
        err_text = f"{100 * err:+.1f}%" if err is not None else "-"
        console.print(f"{what}: predicted x{pred:.3f}, measured {_ratio_text(meas)}, error "
                      f"{err_text}: {verdict} (tolerance {100 * v.tolerance:.0f}%)",
                      highlight=False, markup=False)
    if v.advised_slower_than_all:
        console.print("the advised set measured slower than the recipe on every layer, beyond "
                      "both intervals", highlight=False)
