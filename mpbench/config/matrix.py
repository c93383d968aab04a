"""`matrix:` in a suite: train settings to vary; every combination becomes its own runs.

    matrix:
      batch_size: [8, 16]                  # speedup across batch sizes (speedup-range)
      activation_checkpointing: [false, true]   # with/without pairs (checkpointing-tradeoff)
"""

from __future__ import annotations

import difflib
import itertools
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mpbench.config.errors import first_error
from mpbench.config.schema import Suite, TrainConfig
from mpbench.errors import UserError

# Train fields spelled out in run ids (results/key.ConfigKey.run_id); other varied fields get a tag.
IN_RUN_ID = ("batch_size", "seq_len", "activation_checkpointing", "compile")


def check_matrix(matrix: dict[str, Any], path: Path | str) -> None:
    fields = sorted(TrainConfig.model_fields)
    for key, values in matrix.items():
        if key not in TrainConfig.model_fields:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise UserError(f"{path}: matrix.{key}: not a train setting; {hint}valid: {', '.join(fields)}")
        if not isinstance(values, list) or not values:
            raise UserError(f"{path}: matrix.{key}: give a non-empty list of values, e.g. [8, 16]")


def train_variants(suite: Suite, path: Path | str = "suite") -> list[TrainConfig]:
    """suite.train with each combination of the matrix values applied (validated)."""
    if not suite.matrix:
        return [suite.train]
    check_matrix(suite.matrix, path)
    keys = list(suite.matrix)
    variants = []
    for combo in itertools.product(*(suite.matrix[k] for k in keys)):
        try:
            variants.append(TrainConfig.model_validate({**suite.train.model_dump(),
                                                        **dict(zip(keys, combo, strict=True))}))
        except ValidationError as exc:
            raise UserError(f"{path}: {first_error(exc, TrainConfig, ('matrix',))}") from None
    return variants
