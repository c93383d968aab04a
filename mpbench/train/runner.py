"""Run a whole suite: expand, skip what is recorded, train each run, store each record."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mpbench.config.schema import Suite
from mpbench.data import TokenSource, make_source
from mpbench.plan.spec import RunSpec, expand
from mpbench.precision import get_recipe
from mpbench.results.env_card import EnvCard
from mpbench.results.schema import BudgetNote, RunRecord
from mpbench.results.store import ResultsDir
from mpbench.train.device import resolve_device
from mpbench.train.isolated import run_in_fresh_process
from mpbench.train.loop import ProgressFn, probed_run, run_skip_reason


@dataclass
class RunEvent:
    """What the CLI hears about: a run starting, or a run done with its record."""

    spec: RunSpec
    index: int
    total: int
    record: RunRecord | None = None
    resumed: bool = False


def select(specs: list[RunSpec], only: tuple[str, ...]) -> list[RunSpec]:
    """--only NAME keeps runs whose precision, model or run id equals NAME."""
    if not only:
        return specs
    return [s for s in specs if {s.precision.name, s.model_label, s.run_id} & set(only)]


def skip_reasons(specs: list[RunSpec], device: torch.device) -> dict[str, str]:
    """Why each run that cannot train here skips, by run id (the runs still record it)."""
    reasons = {}
    for spec in specs:
        recipe = get_recipe(spec.precision.name, spec.precision.options)
        reason = run_skip_reason(recipe, spec.train, device)
        if reason is not None:
            reasons[spec.run_id] = reason
    return reasons


def run_extra(out: Path) -> dict[str, Any]:
    """What every run writing into results directory `out` hands its profilers (one process
    and every torchrun rank alike): where traces go, and the measured GEMM ceilings for MFU."""
    extra = {"results_dir": str(out)}
    if (out / "bench").is_dir():
        extra["bench_results"] = str(out)
    return extra


def run_suite(
    suite: Suite,
    results: ResultsDir,
    device: torch.device,
    env: EnvCard,
    specs: list[RunSpec],
    resume: bool,
    progress_for: Callable[[RunSpec], ProgressFn | None],
    suite_dir: Path | None = None,
    isolate: bool = False,
    source: TokenSource | None = None,
    budget: Callable[[RunSpec], BudgetNote | None] | None = None,
) -> Iterator[RunEvent]:
    """Train `specs` in order; with `isolate` each run gets a fresh process (repeats).

    `source`: the corpus if already read; `budget`: why a run has its steps (and its estimate).
    """
    done = results.recorded_ids() if resume else set()
    for i, spec in enumerate(specs):
        if spec.run_id in done:
            yield RunEvent(spec, i, len(specs), resumed=True)
            continue
        yield RunEvent(spec, i, len(specs))
        extra = run_extra(results.path)
        if isolate:
            record = run_in_fresh_process(spec, results, device, env, extra, suite_dir)
            note = budget(spec) if budget is not None else None
            if note is not None:  # the child wrote its record; add why it has its steps
                record = record.model_copy(update={"budget": note})
                results.write(record)
            yield RunEvent(spec, i, len(specs), record=record)
            continue
        if source is None:  # read the corpus once, and only when a run needs it
            source = make_source(suite.data, suite_dir)
        if suite.train.threads:
            torch.set_num_threads(suite.train.threads)
        record = probed_run(spec, source, device, env, progress_for(spec), extra)
        note = budget(spec) if budget is not None else None
        if note is not None:
            record = record.model_copy(update={"budget": note})
        results.write(record)
        yield RunEvent(spec, i, len(specs), record=record)


__all__ = ["RunEvent", "expand", "probed_run", "resolve_device", "run_extra", "run_suite",
           "select", "skip_reasons"]
