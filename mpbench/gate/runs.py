"""The runs the gate compares (interop RunSummary), read from a results directory, a record,
or an exported file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mpbench.errors import UserError
from mpbench.interop.pytest_benchmark import (
    RunSummary,
    exported_runs,
    is_pytest_benchmark,
    summary_of,
)
from mpbench.results.store import MANIFEST, load_records, parse_record


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


def load_runs(path: Path, flag: str) -> list[RunSummary]:
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
    for s in summaries:
        s.source = str(path)
    return summaries
