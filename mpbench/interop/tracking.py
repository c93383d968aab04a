"""What a tracking tool receives for a run: one definition for MLflow and TensorBoard.

`tracked_run(record)` turns a finished record into params, tags, step series and summary
metrics; `comparisons(records)` adds what needs the other runs (speedup over fp32 with its
interval, from mpbench.analysis.compare, the numbers of the summary table). `sync` is the
only way records reach a tracker: `mpbench export` calls it once, `mpbench run --mlflow/
--tensorboard` calls `log_run` as each record is written and `sync` when the suite ends,
so what was logged live equals what an export after the fact writes.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from mpbench.results.payloads import MfuResult, NumericsResult, NvmlResult
from mpbench.results.schema import RunRecord
from mpbench.results.store import MANIFEST, check_results_dir, read_json

TAG_RUN_ID = "mpbench.run_id"
TAG_RESULTS_ID = "mpbench.results_id"
TAG_DIGEST = "mpbench.record_sha256"
TAG_KIND = "mpbench.kind"
SPEEDUP = "speedup_vs_fp32"
SOFTWARE = ("torch", "cuda", "cudnn", "transformer_engine", "torchao", "python", "mpbench",
            "mpbench_commit", "nvidia_ml_py")
MAX_VALUE = 6000  # MLflow's limit on a param value
_BAD_KEY = re.compile(r"[^\w\-. /]")


class Tracker(Protocol):
    def log_run(self, record: RunRecord) -> None:
        """Log one finished run; a run already logged with the same record is skipped."""

    def finish(self, records: list[RunRecord]) -> None:
        """Log what needs every run (speedups, the suite's files) once all are logged."""


def sync(tracker: Tracker, records: list[RunRecord]) -> None:
    for r in records:
        tracker.log_run(r)
    tracker.finish(records)


@dataclass(frozen=True)
class TrackedRun:
    run_id: str
    status: str
    params: dict[str, str]
    tags: dict[str, str]
    series: dict[str, list[tuple[int, float]]]
    """Step metrics: name -> [(global step, value)], steps counted from 1 with warm-up."""
    summary: dict[str, float]
    step: int
    """The run's last step: where summary metrics are logged."""
    start_ms: int
    end_ms: int
    digest: str


def to_ms(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp).timestamp() * 1000)


def record_digest(record: RunRecord) -> str:
    return hashlib.sha256(record.model_dump_json().encode()).hexdigest()


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif value is None:
        return
    else:
        text = json.dumps(value) if isinstance(value, list | tuple) else str(value)
        key = _BAD_KEY.sub("_", prefix)[:250]
        out[key] = text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 40] + " ... (cut; see the record)"


def run_params(r: RunRecord) -> dict[str, str]:
    out: dict[str, str] = {}
    _flatten("", {
        "suite": r.suite, "profile": r.profile, "model": r.model, "precision": r.precision,
        "config": r.config_key.label, "comparison_group": r.config_key.comparison.label,
        "seed": r.seed, "repeat": r.repeat, "batch_size": r.batch_size, "seq_len": r.seq_len,
        "tokens_per_step": r.tokens_per_step, "n_params": r.n_params, "device": r.device,
        "device_name": r.device_name, "flops_per_token": r.flops_per_token,
        "memory_kind": r.memory.kind if r.memory else None,
        "recipe": {k: v for k, v in r.recipe.items()}, "model_dims": r.model_dims,
        "train": r.train, "data": r.data,
        "env": r.env.software(SOFTWARE),
        "cpu": {"model": r.env.cpu.model, "torch_cpu_capability": r.env.cpu.torch_cpu_capability},
        "gpu": {k: getattr(r.env.gpu, k) if r.env.gpu else None
                for k in ("name", "capability", "driver")},
    }, out)
    return out


def run_series(r: RunRecord) -> dict[str, list[tuple[int, float]]]:
    warmup = int(r.train.get("warmup_steps", 0))
    numerics = r.result(NumericsResult)
    series = {
        "train/loss": [(int(s), float(v)) for s, v in r.loss_curve],
        "eval/loss": [(int(s), float(v)) for s, v in r.eval_curve],
        "train/step_time_ms": [(warmup + i + 1, float(t)) for i, t in enumerate(r.step_times_ms)],
        "numerics/loss_scale": numerics.loss_scale if numerics else [],
        "numerics/grad_norm": numerics.finite_grad_norm if numerics else [],
    }
    return {k: [(s, v) for s, v in pts if math.isfinite(v)] for k, pts in series.items() if pts}


def run_summary_metrics(r: RunRecord) -> dict[str, float]:
    peak = r.peak_memory()
    mfu, nvml = r.result(MfuResult), r.result(NvmlResult)
    ceiling = mfu.mfu_vs_ceiling if mfu else None
    values = {
        "tokens_per_s": r.tokens_per_s,
        "step_time_median_ms": r.step_stats.median_ms if r.step_stats else None,
        "peak_memory_mib": peak / 2**20 if peak is not None else None,
        "mfu": r.mfu, "mfu_vs_measured_ceiling": ceiling, "achieved_tflops": r.achieved_tflops,
        "joules_per_token": nvml.joules_per_token if nvml else None,
        "eval_loss": r.eval_loss, "final_train_loss": r.final_train_loss,
        "first_step_s": r.first_step_s, "duration_s": r.duration_s,
    }
    return {k: float(v) for k, v in values.items() if v is not None and math.isfinite(v)}


def tracked_run(r: RunRecord) -> TrackedRun:
    series = run_series(r)
    last = max((pts[-1][0] for pts in series.values()), default=0)
    tags = {TAG_RUN_ID: r.run_id, TAG_KIND: "run", "mpbench.status": r.status}
    if r.reason:
        tags["mpbench.reason"] = r.reason[:MAX_VALUE]
    if r.env.mpbench_commit:
        tags["mlflow.source.git.commit"] = r.env.mpbench_commit
    return TrackedRun(r.run_id, r.status, run_params(r), tags, series, run_summary_metrics(r),
                      last, to_ms(r.started_at), to_ms(r.finished_at), record_digest(r))


def comparisons(records: list[RunRecord]) -> dict[str, dict[str, float]]:
    """Speedup over fp32 of each run's configuration (seeds pooled), as the summary table has it.

    The baseline itself gets 1.0 without an interval; a bound the estimator could not give
    (too few steps) is left out.
    """
    from mpbench.analysis.compare import Groups, speedup  # scipy: lazily

    groups = Groups(records)
    out: dict[str, dict[str, float]] = {}
    for g in groups:
        ratio = speedup(g, groups.baseline(g))
        if ratio is None:
            continue
        base = g.role == "baseline"
        values = {SPEEDUP: 1.0} if base else {SPEEDUP: ratio.value}
        if not base and ratio.low is not None and ratio.high is not None:
            values[f"{SPEEDUP}_low"] = ratio.low
            values[f"{SPEEDUP}_high"] = ratio.high
        for r in g.ok:
            out[r.run_id] = values
    return out


def comparison_time_ms(records: list[RunRecord]) -> int:
    """When the comparison became what it is: the last run's finish time."""
    return max((to_ms(r.finished_at) for r in records), default=0)


@dataclass(frozen=True)
class SuiteInfo:
    """The results directory as one suite: its identity, params and files for artifacts."""

    results_id: str
    name: str
    created_ms: int
    params: dict[str, str]
    files: list[Path]


def suite_info(results: Path) -> SuiteInfo:
    """Read from the directory's own files, so `run` (before any record) and `export` agree."""
    check_results_dir(results, "mpbench run")
    meta = read_json(results / MANIFEST, "restore it from the run's output")
    name, created = str(meta.get("suite", "")), str(meta.get("created_at", ""))
    if not created:  # a hand-made manifest: the file's time stands in for the suite's start
        mtime = datetime.fromtimestamp((results / MANIFEST).stat().st_mtime, timezone.utc)
        created = mtime.isoformat(timespec="seconds")
    resolved_path = results / "suite.resolved.json"
    resolved = read_json(resolved_path, "restore it") if resolved_path.is_file() else {}
    params: dict[str, str] = {}
    if isinstance(resolved, dict):
        _flatten("", {k: v for k, v in resolved.items() if k not in ("devices", "extensions")},
                 params)
    files = [results / n for n in ("report.html", "suite.yaml", "suite.resolved.json", MANIFEST)]
    return SuiteInfo(f"{name}@{created}", name, to_ms(created), params, files)
