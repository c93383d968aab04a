"""Convert mpbench records to pytest-benchmark's JSON (and back, for `mpbench gate`), and the
`mpbench export --format pytest-benchmark` exporter that writes it.

One benchmark per run that has step times; each round is one measured training step, in
seconds, as pytest-benchmark stores them. The run's configuration and its memory, loss and
status travel in `extra_info["mpbench"]`, so the exported file can serve as a gate baseline.
Runs without step times (skipped, oom, failed) go to the top-level "mpbench" section, which
pytest-benchmark ignores.
"""

from __future__ import annotations

import json
import platform
import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mpbench.errors import UserError
from mpbench.interop.base import Exporter, ExportRequest, register
from mpbench.results.env_card import EnvCard
from mpbench.results.key import ConfigKey
from mpbench.results.output import write_output
from mpbench.results.schema import RunRecord
from mpbench.results.upgrade import derive_key, renamed_key_fields

EXPORT_FORMAT = "mpbench-pytest-benchmark"
EXPORT_VERSION = 2
"""2: the run summaries' config_key says recipe_id (version 1 said precision, still read), so
an mpbench from before refuses the file as newer instead of as corrupt."""
PYTEST_BENCHMARK_VERSION = "5.1.0"
"""The file-format generation we write; any pytest-benchmark >= 3.1 reads it."""

SOFTWARE_KEYS = ("torch", "cuda", "cudnn", "transformer_engine", "torchao", "mpbench",
                 "mpbench_commit", "python")


def _quartiles(data: list[float]) -> tuple[float, float]:
    """Q1 and Q3 computed the way pytest-benchmark computes them (Wikipedia methods 2 and 3)."""
    n = len(data)
    if n == 1:
        return data[0], data[0]
    if n % 2 == 0:
        return statistics.median(data[: n // 2]), statistics.median(data[n // 2:])
    k, r = n // 4, n % 4
    if r == 1:
        return (0.25 * data[k - 1] + 0.75 * data[k],
                0.75 * data[3 * k] + 0.25 * data[3 * k + 1])
    return (0.75 * data[k] + 0.25 * data[k + 1],
            0.25 * data[3 * k + 1] + 0.75 * data[3 * k + 2])


def benchmark_stats(times_s: Sequence[float]) -> dict[str, Any]:
    """pytest-benchmark's `stats` block for these round times (seconds, one per round)."""
    data = [float(t) for t in times_s]
    if not data:
        raise ValueError("benchmark_stats needs at least one time")
    ordered = sorted(data)
    mean = statistics.mean(data)
    stddev = statistics.stdev(data) if len(data) > 1 else 0.0
    q1, q3 = _quartiles(ordered)
    iqr = q3 - q1
    total = sum(data)
    std_out = sum(1 for v in data if v < mean - stddev or v > mean + stddev)
    iqr_out = sum(1 for v in data if v < q1 - 1.5 * iqr or v > q3 + 1.5 * iqr)
    return {
        "min": ordered[0], "max": ordered[-1], "mean": mean, "stddev": stddev,
        "rounds": len(data), "median": statistics.median(data), "iqr": iqr, "q1": q1, "q3": q3,
        "iqr_outliers": iqr_out, "stddev_outliers": std_out, "outliers": f"{std_out};{iqr_out}",
        "ld15iqr": ordered[bisect_left(ordered, q1 - 1.5 * iqr)],
        "hd15iqr": ordered[bisect_right(ordered, q3 + 1.5 * iqr) - 1],
        "ops": len(data) / total if total else 0.0, "total": total,
        "data": data, "iterations": 1,
    }


class RunSummary(BaseModel):
    """The gate's view of a run, without its curves and traces: made from a record, or read
    from an export's extra_info["mpbench"] (step times travel as the benchmark's rounds)."""

    model_config = ConfigDict(extra="ignore")  # exports of a newer mpbench may say more

    run_id: str
    config_key: ConfigKey
    """The run's configuration (exports made before the key existed get it derived once, as
    the record upgrader does for schema-1 records; a key written before schema 4 has its
    `precision` read as `recipe_id`, as the upgrader renames it)."""
    suite: str = ""
    profile: str
    model: str
    precision: str
    batch_size: int
    seq_len: int
    seed: int
    repeat: int = 0
    device: str
    device_name: str
    status: str
    reason: str | None = None
    tokens_per_s: float | None = None
    peak_bytes: int | None = None
    memory_kind: str | None = None
    eval_loss: float | None = None
    final_train_loss: float | None = None
    train: dict[str, Any] = Field(default_factory=dict)
    software: dict[str, Any] = Field(default_factory=dict)
    gpu_driver: str | None = None
    schema_version: int | None = None
    probe_ms: float | None = None
    step_times_ms: list[float] = Field(default_factory=list, exclude=True)
    """The measured steps (read back from the rounds; not written into extra_info)."""
    source: str = Field("", exclude=True)
    """The results path the gate read this run from (several --baseline are told apart by it)."""

    @property
    def device_kind(self) -> str:
        """'cpu' or 'cuda' (the device's type, without an index)."""
        return self.device.split(":")[0]

    @property
    def config_id(self) -> str:
        """The configuration (results/key.py) without the profile, which the gate's matching
        adds unless --allow-mismatch: model, settings, parallel combination, precision."""
        return self.config_key.label

    @property
    def versions(self) -> dict[str, Any]:
        """Software versions and the GPU driver: what the gate names when they changed."""
        return {**self.software, "gpu driver": self.gpu_driver}

    @model_validator(mode="before")
    @classmethod
    def _key_of_old_exports(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("config_key") is None and "run_id" in data:
            return {**data, "config_key": derive_key(data)}
        if isinstance(data, dict) and isinstance(data.get("config_key"), dict):
            # written before schema 4 called the key's precision recipe_id
            return {**data, "config_key": renamed_key_fields(data["config_key"])}
        return data


def summary_of(r: RunRecord) -> RunSummary:
    """The record's summary: the fields both share, and what the gate reads of the rest."""
    shared = {k: getattr(r, k) for k in RunSummary.model_fields if k in RunRecord.model_fields}
    return RunSummary(
        **shared, peak_bytes=r.memory.peak_bytes if r.memory else None,
        memory_kind=r.memory.kind if r.memory else None, software=r.env.software(SOFTWARE_KEYS),
        gpu_driver=r.env.gpu.driver if r.env.gpu else None,
        probe_ms=r.probe.score_ms if r.probe else None)


def run_summary(r: RunRecord) -> dict[str, Any]:
    """The run's RunSummary as the JSON an export stores."""
    return summary_of(r).model_dump(mode="json")


def machine_info(records: list[RunRecord]) -> dict[str, Any]:
    env = records[0].env if records else EnvCard()
    cpu = env.cpu
    return {
        "node": env.hostname, "processor": cpu.arch,
        "machine": cpu.arch or platform.machine(), "python_implementation": "CPython",
        "python_version": env.python or platform.python_version(),
        "system": platform.system(), "release": env.os,
        "cpu": {"brand_raw": cpu.model, "count": cpu.logical_cores, "arch": cpu.arch},
        "mpbench_device": records[0].device_name if records else "",
        "mpbench_env": env.model_dump(mode="json"),
    }


def commit_info(records: list[RunRecord]) -> dict[str, Any]:
    commit = records[0].env.mpbench_commit if records else None
    return {"id": commit or "unversioned", "time": None, "author_time": None, "dirty": False,
            "project": "mpbench", "branch": "(unknown)"}


def to_pytest_benchmark(records: list[RunRecord]) -> dict[str, Any]:
    benchmarks, untimed = [], []
    for r in records:
        summary = run_summary(r)
        if r.status != "ok" or not r.step_times_ms:
            untimed.append(summary)
            continue
        benchmarks.append({
            "group": f"{r.suite} {r.config_key.comparison.label}",
            "name": r.run_id,
            "fullname": f"{r.suite}::{r.run_id}",
            "params": {"model": r.model, "precision": r.precision, "batch_size": r.batch_size,
                       "seq_len": r.seq_len, "seed": r.seed, "profile": r.profile},
            "param": r.run_id,
            "extra_info": {"mpbench": summary, "tokens_per_s": r.tokens_per_s},
            "options": {"timer": "perf_counter (mpbench measured window)", "warmup":
                        r.train.get("warmup_steps"), "min_rounds": len(r.step_times_ms)},
            "stats": benchmark_stats([t / 1e3 for t in r.step_times_ms]),
        })
    return {
        "machine_info": machine_info(records),
        "commit_info": commit_info(records),
        "benchmarks": benchmarks,
        "datetime": datetime.now(timezone.utc).isoformat(),
        "version": PYTEST_BENCHMARK_VERSION,
        "mpbench": {"format": EXPORT_FORMAT, "version": EXPORT_VERSION,
                    "runs_without_timings": untimed},
    }


def is_pytest_benchmark(data: Any) -> bool:
    return isinstance(data, dict) and "benchmarks" in data and "machine_info" in data


def exported_runs(data: dict[str, Any], source: Path) -> list[RunSummary]:
    """Run summaries (with step_times_ms) from `mpbench export`, or from a pytest-benchmark
    JSON written by tests that use mpbench.pytest_plugin (benchmarks carrying extra_info)."""
    meta = data.get("mpbench")
    meta = meta if isinstance(meta, dict) else {}
    if meta and meta.get("format") != EXPORT_FORMAT:
        raise UserError(f"{source}: unknown 'mpbench' section format {meta.get('format')!r}")
    version = meta.get("version", EXPORT_VERSION)
    if not isinstance(version, int) or version > EXPORT_VERSION:
        raise UserError(f"{source}: export version {version!r} is newer than this mpbench reads "
                        f"({EXPORT_VERSION}); upgrade mpbench")
    runs: list[RunSummary] = []
    try:
        for bench in data["benchmarks"]:
            summary = (bench.get("extra_info") or {}).get("mpbench")
            if summary is None:
                continue  # an ordinary pytest benchmark next to mpbench's
            if "data" not in bench["stats"]:
                raise UserError(f"{source}: benchmark {bench.get('name')!r} has no per-round "
                                "data; save with --benchmark-save-data or --benchmark-json")
            runs.append(RunSummary.model_validate({**summary, "step_times_ms": [
                float(t) * 1e3 for t in bench["stats"]["data"]]}))
        for summary in meta.get("runs_without_timings", []):
            runs.append(RunSummary.model_validate({**summary, "step_times_ms": []}))
    except ValidationError as exc:
        where = ".".join(str(p) for p in exc.errors()[0]["loc"])
        raise UserError(f"{source}: corrupt mpbench export (missing or bad run field {where!r}); "
                        "export the results again") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UserError(f"{source}: corrupt mpbench export (missing or bad {exc}); "
                        "export the results again") from None
    if not runs:
        raise UserError(f"{source}: a pytest-benchmark file without mpbench runs; the gate "
                        "needs `mpbench export RESULTS --format pytest-benchmark` output (or "
                        "--benchmark-json from tests using mpbench.pytest_plugin, with data)")
    return runs


@register
class PytestBenchmarkExporter(Exporter):
    name = "pytest-benchmark"
    summary = ("JSON to -o FILE.json, one benchmark per run and one round per "
               "measured step (also a `mpbench gate --baseline`)")

    def export(self, request: ExportRequest) -> str:
        request.refuse(self.name, tracking_uri=request.tracking_uri,
                       experiment=request.experiment)
        output = request.output
        if output is None:
            raise UserError("--out: --format pytest-benchmark needs -o FILE.json")
        if output.is_dir():
            raise UserError(f"--out: {output} is a directory; give a file name such as "
                            f"{output / 'baseline.json'}")
        data = to_pytest_benchmark(request.records)
        write_output(output, json.dumps(data, indent=1), "--out")
        timed = len(data["benchmarks"])
        return (f"wrote {output}: {timed} benchmarks ({self.name}), "
                f"{len(request.records) - timed} runs without step times")
