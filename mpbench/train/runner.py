"""Run a whole suite: expand, skip what is recorded, train each run, store each record."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mpbench.config.schema import Suite
from mpbench.data import TokenSource, make_source
from mpbench.results.schema import BudgetNote, RunRecord
from mpbench.results.store import ResultsDir
from mpbench.train.device import resolve_device
from mpbench.train.loop import ProgressFn, train_run
from mpbench.train.spec import RunSpec, expand


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


def run_suite(
    suite: Suite,
    results: ResultsDir,
    device: torch.device,
    env: dict[str, Any],
    specs: list[RunSpec],
    resume: bool,
    progress_for: Callable[[RunSpec], ProgressFn | None],
    suite_dir: Path | None = None,
    source: TokenSource | None = None,
    budget: BudgetNote | None = None,
) -> Iterator[RunEvent]:
    """`source`: the corpus if already read; `budget`: why the runs have their steps."""
    done = results.recorded_ids() if resume else set()
    for i, spec in enumerate(specs):
        if spec.run_id in done:
            yield RunEvent(spec, i, len(specs), resumed=True)
            continue
        yield RunEvent(spec, i, len(specs))
        if source is None:  # read the corpus once, and only when a run needs it
            source = make_source(suite.data, suite_dir)
        if suite.train.threads:
            torch.set_num_threads(suite.train.threads)
        extra = {"results_dir": str(results.path)}
        if (results.path / "bench").is_dir():  # measured GEMM ceilings for MFU
            extra["bench_results"] = str(results.path)
        record = train_run(spec, source, device, env, progress_for(spec), extra=extra)
        if budget is not None:
            record = record.model_copy(update={"budget": budget})
        results.write(record)
        yield RunEvent(spec, i, len(specs), record=record)


__all__ = ["RunEvent", "expand", "resolve_device", "run_suite", "select"]
