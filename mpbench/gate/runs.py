"""The gate's view of a run, read from a results directory, a record, or an exported file."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpbench.errors import UserError
from mpbench.interop.pytest_benchmark import (
    RunSummary,
    exported_runs,
    is_pytest_benchmark,
    summary_of,
)
from mpbench.results.key import ConfigKey
from mpbench.results.store import MANIFEST, load_records, parse_record


@dataclass(frozen=True)
class GateRun:
    run_id: str
    model: str
    precision: str
    batch_size: int
    seq_len: int
    seed: int
    profile: str
    device_kind: str
    """'cpu' or 'cuda' (the device's type, without an index)."""
    device_name: str
    status: str
    reason: str | None
    step_times_ms: tuple[float, ...]
    peak_bytes: int | None
    memory_kind: str | None
    eval_loss: float | None
    key: ConfigKey = field(compare=False)
    """The run's configuration (RunSummary.config_key), what matching pairs runs by."""
    repeat: int = 0
    probe_ms: float | None = None
    """The machine-drift probe's score around this run (None in older records)."""
    source: str = ""
    """The results path this run was read from (several --baseline are told apart by it)."""
    train: dict[str, Any] = field(default_factory=dict, compare=False)
    software: dict[str, Any] = field(default_factory=dict, compare=False)
    @property
    def config_id(self) -> str:
        """The configuration (results/key.py) without the profile, which the matching adds
        unless --allow-mismatch: model, settings, parallel combination, precision."""
        return self.key.label


def from_summary(s: RunSummary, source: str = "") -> GateRun:
    return GateRun(
        run_id=s.run_id, model=s.model, precision=s.precision, batch_size=s.batch_size,
        seq_len=s.seq_len, seed=s.seed, profile=s.profile, device_kind=s.device.split(":")[0],
        device_name=s.device_name, status=s.status, reason=s.reason,
        step_times_ms=tuple(s.step_times_ms), peak_bytes=s.peak_bytes,
        memory_kind=s.memory_kind, eval_loss=s.eval_loss, repeat=s.repeat,
        probe_ms=s.probe_ms, source=source, train=dict(s.train),
        software={**s.software, "gpu driver": s.gpu_driver}, key=s.config_key,
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: corrupt JSON at line {exc.lineno}, column {exc.colno}; "
                        "restore the file or produce it again") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text JSON file") from None


def _summaries(path: Path) -> list[RunSummary]:
    if path.is_dir():
        return [summary_of(r) for r in load_records(path)]
    raw = _read_json(path)
    if is_pytest_benchmark(raw):
        return exported_runs(raw, path)
    record = parse_record(raw, path)
    return [summary_of(record)]


def result_sets(path: Path) -> list[Path]:
    """PATH itself, or, for a directory of results directories, each of them (sorted)."""
    if path.is_dir() and not (path / MANIFEST).is_file():
        inner = sorted(p.parent for p in path.glob(f"*/{MANIFEST}"))
        if inner:
            return inner
    return [path]


def load_runs(path: Path, flag: str) -> list[GateRun]:
    """All runs at PATH: a results directory, one run record, or a `mpbench export` file."""
    if not path.exists():
        raise UserError(f"{flag}: {path} not found; give a results directory written by "
                        "`mpbench run` or a file written by `mpbench export`")
    try:
        summaries = _summaries(path)
    except UserError as exc:
        raise UserError(f"{flag}: {exc}") from None
    if not summaries:
        raise UserError(f"{flag}: {path} holds no runs; run the suite first")
    try:
        return [from_summary(s, str(path)) for s in summaries]
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{flag}: {path}: run entry lacks a valid {exc}") from None
