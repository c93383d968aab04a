"""Records as a pandas DataFrame, one row per run."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mpbench.results.recipe_card import recipe_card
from mpbench.results.schema import RunRecord
from mpbench.results.store import load_records

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
    return pd.DataFrame([record_row(r) for r in records], columns=COLUMNS)


def load_results(path: str | Path) -> pd.DataFrame:
    """Load a results directory into a DataFrame (one row per run).

    Raises mpbench.errors.UserError for a missing, corrupt or foreign file.
    """
    return records_frame(load_records(path))
