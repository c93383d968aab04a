"""One run in a fresh process: what `mpbench run --repeats N` uses for every run.

A process pays one-time costs in its first run (allocator growth, thread pools, lazy
kernels): on a CPU the first recipe of a process showed 11.3 MiB peak RSS and the next ones
~4 MiB. A fresh Python process per run gives every repeat the same start. The parent sends
the resolved suite and the run id as JSON on stdin; the child trains that run, times the
drift probe around it, writes the record into the results directory and exits.

    python -m mpbench.train.isolated < request.json
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from mpbench.config.schema import Suite
from mpbench.data import make_source
from mpbench.plan.spec import RunSpec, expand
from mpbench.results.env_card import EnvCard
from mpbench.results.schema import RunRecord
from mpbench.results.store import ResultsDir, read_record
from mpbench.train.loop import probed_run
from mpbench.train.record import RunOutcome, build_record


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
    proc = subprocess.run([sys.executable, "-m", "mpbench.train.isolated"], input=payload,
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
