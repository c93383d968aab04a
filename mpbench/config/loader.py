"""Load a suite file: parse, merge the device profile, validate it against the schema; and
expand its `matrix:` (train settings to vary: every combination becomes its own runs).

    matrix:
      batch_size: [8, 16]                  # speedup across batch sizes (speedup-range)
      activation_checkpointing: [false, true]   # with/without pairs (checkpointing-tradeoff)

Pure schema: checks that need a registry (recipe, profiler and claim names, model
shapes) live one layer up, in mpbench.train.load, which passes them in as `check`."""

from __future__ import annotations

import copy
import difflib
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mpbench.config.errors import dotted, first_error
from mpbench.config.schema import DeviceKind, Suite, TrainConfig
from mpbench.errors import UserError

SuiteCheck = Callable[[Suite, Path, dict[str, Any], str], None]
"""(suite, path, device override, device kind) -> None, or a UserError."""


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise UserError(f"suite file not found: {path}; check the path (bundled suites are in suites/)")
    if path.is_dir():
        raise UserError(f"{path} is a directory; give a suite .yaml file inside it")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UserError(f"{path}: cannot be read: {exc.strerror or type(exc).__name__}; "
                        "give a readable suite file") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise UserError(f"{path}: YAML syntax error at {where}: {exc.problem}; fix the YAML") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: YAML error: {exc}") from None
    if raw is None:
        raise UserError(f"{path} is empty; a suite needs at least name, models and precisions")
    if not isinstance(raw, dict):
        raise UserError(f"{path}: the top level must be a mapping of keys (name, models, ...)")
    return raw


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; lists and scalars in the override replace the base."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _set_in_override(override: dict[str, Any], loc: tuple[Any, ...]) -> bool:
    node: Any = override
    for part in loc:
        if isinstance(part, int):
            return True  # lists come whole from the override
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _validate(raw: dict[str, Any], path: Path, override: dict[str, Any], kind: str) -> Suite:
    try:
        return Suite.model_validate(raw)
    except ValidationError as exc:
        loc = tuple(exc.errors()[0]["loc"])
        prefix: tuple[Any, ...] = ("devices", kind) if override and _set_in_override(override, loc) else ()
        raise UserError(f"{path}: {first_error(exc, Suite, prefix)}") from None


def _suite_relative_configs(raw: dict[str, Any], path: Path) -> dict[str, Any]:
    """hf_config paths relative to the suite file become absolute (runs may start elsewhere)."""

    def fix(models: Any) -> Any:
        if not isinstance(models, list):
            return models
        out = []
        for entry in models:
            ref = entry.get("hf_config") if isinstance(entry, dict) else None
            if isinstance(ref, str) and not Path(ref).is_absolute() and (path.parent / ref).exists():
                entry = {**entry, "hf_config": str((path.parent / ref).resolve())}
            out.append(entry)
        return out

    raw = {**raw, "models": fix(raw.get("models"))} if "models" in raw else dict(raw)
    for kind, section in (raw.get("devices") or {}).items():
        if isinstance(section, dict) and "models" in section:
            raw["devices"] = {**raw["devices"], kind: {**section, "models": fix(section["models"])}}
    return raw


def load_suite_schema(path: str | Path, device_kind: DeviceKind,
                      check: SuiteCheck | None = None) -> Suite:
    """Validate the base suite and every device profile (each also by `check`, in turn);
    return the one for `device_kind`. Runs load through mpbench.train.load.load_suite."""
    path = Path(path)
    raw = _suite_relative_configs(read_yaml(path), path)
    _validate(raw, path, {}, "")
    devices = raw.get("devices") or {}
    resolved: dict[str, Suite] = {}
    for kind in ("cpu", "cuda"):
        override = devices.get(kind) or {}
        if not isinstance(override, dict):
            raise UserError(f"{path}: devices.{kind}: must be a mapping of suite keys")
        bad = [k for k in override if k in ("name", "devices", "profile")]
        if bad:
            raise UserError(f"{path}: devices.{kind}.{bad[0]}: cannot be set per device; move it to the top level")
        merged = deep_merge({k: v for k, v in raw.items() if k != "devices"}, override)
        merged["profile"] = kind if override else "default"
        suite = _validate(merged, path, override, kind)
        if check is not None:
            check(suite, path, override, kind)
        resolved[kind] = suite
    return resolved[device_kind]


__all__ = ["SuiteCheck", "deep_merge", "dotted", "load_suite_schema", "read_yaml"]


# -- the matrix: train settings to vary ------------------------------------------------------

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
