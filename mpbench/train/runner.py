"""Run a whole suite: expand, skip what is recorded, train each run, store each record.

With `isolate` (what `mpbench run --repeats N` uses) every run gets a fresh Python process.
A process pays one-time costs in its first run (allocator growth, thread pools, lazy
kernels): on a CPU the first recipe of a process showed 11.3 MiB peak RSS and the next ones
~4 MiB. A fresh process per run gives every repeat the same start. The parent sends the
resolved suite and the run id as JSON on stdin; the child trains that run, times the drift
probe around it, writes the record into the results directory and exits.

    python -m mpbench.train.runner < request.json
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from mpbench.config.schema import Suite
from mpbench.data import TokenSource, make_source
from mpbench.plan.spec import RunSpec, expand
from mpbench.precision import get_recipe
from mpbench.results.env_card import EnvCard
from mpbench.results.schema import BudgetNote, RunRecord
from mpbench.results.store import ResultsDir, read_record
from mpbench.train import resolve_device
from mpbench.train.loop import ProgressFn, probed_run, run_skip_reason
from mpbench.train.record import RunOutcome, build_record


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


def request(spec: RunSpec, results: ResultsDir, device: torch.device, env: EnvCard,
            extra: dict[str, Any], suite_dir: Path | None) -> dict[str, Any]:
    return {"suite": spec.suite.model_dump(mode="json"), "run_id": spec.run_id,
            "device": str(device), "results_dir": str(results.path),
            "env": env.model_dump(mode="json"),
            "extra": extra, "suite_dir": str(suite_dir) if suite_dir else None}


def crashed_record(spec: RunSpec, device: torch.device, env: EnvCard, reason: str,
                   started: datetime, t_start: float) -> RunRecord:
    """The record of a run whose worker process died before writing one."""
    return build_record(spec, device, env, RunOutcome(status="failed", reason=reason), started,
                        t_start)


def run_in_fresh_process(spec: RunSpec, results: ResultsDir, device: torch.device,
                         env: EnvCard, extra: dict[str, Any],
                         suite_dir: Path | None) -> RunRecord:
    """Train `spec` in a child Python process and return the record it wrote."""
    started, t_start = datetime.now(timezone.utc), time.perf_counter()
    payload = json.dumps(request(spec, results, device, env, extra, suite_dir))
    proc = subprocess.run([sys.executable, "-m", "mpbench.train.runner"], input=payload,
                          capture_output=True, text=True, check=False)
    path = results.record_path(spec.run_id)
    if proc.returncode == 0 and path.is_file():
        return read_record(path)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    last = lines[-1] if lines else "no output"
    reason = f"worker process exited with code {proc.returncode}: {last}"[:500]
    record = crashed_record(spec, device, env, reason, started, t_start)
    results.write(record)
    return record


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


def child_main() -> int:
    req = json.loads(sys.stdin.read())
    suite = Suite.model_validate(req["suite"])
    spec = next((s for s in expand(suite) if s.run_id == req["run_id"]), None)
    if spec is None:
        print(f"run {req['run_id']} is not in suite {suite.name}", file=sys.stderr)
        return 2
    suite_dir = Path(req["suite_dir"]) if req["suite_dir"] else None
    if suite_dir is not None and str(suite_dir) not in sys.path:
        # a `module:` model's factory is importable from the suite's folder, as in the parent
        sys.path.append(str(suite_dir))  # after installed packages, as models/user.py does
    source = make_source(suite.data, suite_dir)
    if suite.train.threads:
        torch.set_num_threads(suite.train.threads)
    record = probed_run(spec, source, torch.device(req["device"]),
                        EnvCard.model_validate(req["env"]), None,
                        req["extra"])
    ResultsDir(Path(req["results_dir"])).write(record)
    return 0


if __name__ == "__main__":
    sys.exit(child_main())


__all__ = ["RunEvent", "expand", "probed_run", "resolve_device", "run_extra", "run_suite",
           "select", "skip_reasons"]


if __name__ == "__main__":
    sys.exit(child_main())
