"""The results directory: a manifest, one record per run, written atomically; read back as
records or as a pandas DataFrame (one row per run)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from mpbench.config.errors import first_error
from mpbench.errors import UserError
from mpbench.results.output import write_output
from mpbench.results.recipe_card import recipe_card
from mpbench.results.schema import RESULTS_FORMAT, SCHEMA_VERSION, RunRecord
from mpbench.results.upgrade import upgrade

if TYPE_CHECKING:
    import pandas as pd

MANIFEST = "mpbench-results.json"
RUNS = "runs"


class ResultsDir:
    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def runs_dir(self) -> Path:
        return self.path / RUNS

    def create(self, suite_name: str, suite_config: dict[str, Any], suite_text: str) -> None:
        write_output(self.runs_dir, None, "--out")
        manifest = self.path / MANIFEST
        if not manifest.exists():
            write_output(manifest, json.dumps({
                "format": RESULTS_FORMAT,
                "schema_version": SCHEMA_VERSION,
                "suite": suite_name,
                "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }, indent=2), "results")
        write_output(self.path / "suite.yaml", suite_text, "results")
        write_output(self.path / "suite.resolved.json", json.dumps(suite_config, indent=2), "results")

    def record_path(self, run_id: str) -> Path:
        return self.runs_dir / f"{run_id}.json"

    def recorded_ids(self) -> set[str]:
        if not self.runs_dir.is_dir():
            return set()
        return {p.stem for p in self.runs_dir.glob("*.json")}

    def write(self, record: RunRecord) -> Path:
        path = self.record_path(record.run_id)
        write_output(path, record.model_dump_json(indent=1), "results")
        return path


def parse_record(raw: Any, source: Path) -> RunRecord:
    if not isinstance(raw, dict) or "run_id" not in raw or "schema_version" not in raw:
        raise UserError(f"{source}: not an mpbench run record (no run_id/schema_version)")
    version = raw["schema_version"]
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise UserError(
            f"{source}: schema_version {version!r} is newer than this mpbench reads "
            f"({SCHEMA_VERSION}); upgrade mpbench"
        )
    try:
        raw = upgrade(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{source}: corrupt schema-{version} run record (cannot upgrade it: "
                        f"missing or bad {exc}); delete it or re-run that run") from None
    try:
        return RunRecord.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{source}: corrupt run record: {first_error(exc, RunRecord)}; delete "
                        "it and re-run that run (mpbench run --resume)") from None


def read_json(path: Path, fix: str) -> Any:
    """Parse a JSON file; a corrupt one is a UserError naming the file, the place and `fix`."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: not found; {fix}") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read: {exc.strerror or type(exc).__name__}; "
                        "give a readable file") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: corrupt JSON at line {exc.lineno}, column {exc.colno}; {fix}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text JSON file; delete it or restore it") from None


def check_results_dir(path: Path, command: str) -> None:
    """`path` must be a directory with a valid mpbench manifest (written by `command`)."""
    manifest = path / MANIFEST
    if not manifest.is_file():
        raise UserError(f"{path} is not an mpbench results directory (no {MANIFEST}); "
                        f"give the directory that `{command}` printed")
    meta = read_json(manifest, "restore it from the run's output")
    if not isinstance(meta, dict) or meta.get("format") != RESULTS_FORMAT:
        raise UserError(f"{manifest}: not an mpbench results manifest")


def read_record(path: Path) -> RunRecord:
    raw = read_json(path, "delete the file and re-run that run (mpbench run --resume)")
    return parse_record(raw, path)


def load_records(path: str | Path) -> list[RunRecord]:
    """Every record of a results directory (or one record file), in run order."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"results not found: {path}; give a directory written by `mpbench run`")
    if path.is_file():
        return [read_record(path)]
    check_results_dir(path, "mpbench run")
    records = [read_record(p) for p in sorted((path / RUNS).glob("*.json"))]
    return sorted(records, key=lambda r: r.started_at)


COLUMNS = [
    "run_id", "config", "group", "suite", "profile", "model", "precision", "family", "seed",
    "repeat", "batch_size", "seq_len",
    "device", "device_name", "status", "reason", "tokens_per_s", "step_time_ms", "step_time_p10_ms",
    "step_time_p90_ms", "n_steps", "peak_memory_bytes", "final_train_loss", "eval_loss",
    "flops_per_token", "mfu", "numerics_only", "n_params",
]


def record_row(r: RunRecord) -> dict[str, object]:
    stats = r.step_stats
    recipe = recipe_card(r)
    return {
        "run_id": r.run_id,
        "config": r.config_key.label,
        "group": r.config_key.comparison.label,
        "suite": r.suite,
        "profile": r.profile,
        "model": r.model,
        "precision": r.precision,
        "family": recipe.family,
        "seed": r.seed,
        "repeat": r.repeat,
        "batch_size": r.batch_size,
        "seq_len": r.seq_len,
        "device": r.device,
        "device_name": r.device_name,
        "status": r.status,
        "reason": r.reason,
        "tokens_per_s": r.tokens_per_s,
        "step_time_ms": stats.median_ms if stats else None,
        "step_time_p10_ms": stats.p10_ms if stats else None,
        "step_time_p90_ms": stats.p90_ms if stats else None,
        "n_steps": stats.n if stats else 0,
        "peak_memory_bytes": r.memory.peak_bytes if r.memory else None,
        "final_train_loss": r.final_train_loss,
        "eval_loss": r.eval_loss,
        "flops_per_token": r.flops_per_token,
        "mfu": r.mfu,
        "numerics_only": recipe.numerics_only,
        "n_params": r.n_params,
    }


def records_frame(records: list[RunRecord]) -> pd.DataFrame:
    """Records as a pandas DataFrame, one row per run."""
    import pandas as pd  # on first use: pandas costs start-up time

    return pd.DataFrame([record_row(r) for r in records], columns=COLUMNS)


def load_results(path: str | Path) -> pd.DataFrame:
    """Load a results directory into a DataFrame (one row per run).

    Raises mpbench.errors.UserError for a missing, corrupt or foreign file.
    """
    return records_frame(load_records(path))
