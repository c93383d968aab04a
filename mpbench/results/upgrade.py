"""Bring a stored record (a dict from JSON) up to SCHEMA_VERSION, one version step at a time.

Applied by every loader (results/store.parse_record), so results written by older mpbench
(the committed examples under reports/ are schema 1) load, show, report and gate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mpbench.results.key import derive_key
from mpbench.results.schema import SCHEMA_VERSION


def _v1_to_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 2 adds the configuration key, derived from the run id, train settings, the
    suite's matrix and the device profile."""
    return {**raw, "config_key": derive_key(raw).model_dump(mode="json"), "schema_version": 2}


ROLES_BEFORE_V3: dict[str, tuple[str, str]] = {
    "fp32": ("baseline", ""), "fp16": ("mixed", ""), "bf16": ("mixed", ""),
    "fp16-noscale": ("context", "FP16 without loss scaling (broken on purpose to show underflow)"),
    "bf16-pure": ("context", "no FP32 master weights"),
}
"""The roles the recipes of schema 1-2 had (the claims' name lists of that time); any other
recipe was 'other'."""


def _v2_to_v3(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 3 stores the recipe's role in its card."""
    recipe = dict(raw.get("recipe") or {})
    role, note = ROLES_BEFORE_V3.get(str(recipe.get("name", raw.get("precision"))), ("other", ""))
    recipe.setdefault("role", role)
    recipe.setdefault("role_note", note)
    return {**raw, "recipe": recipe, "schema_version": 3}


STEPS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2, 2: _v2_to_v3}
"""From version N to N+1."""


def upgrade(raw: dict[str, Any]) -> dict[str, Any]:
    """The record at SCHEMA_VERSION; raises KeyError/TypeError/ValueError on a broken one."""
    version = int(raw.get("schema_version", 1))
    while version < SCHEMA_VERSION:
        raw = STEPS[version](raw)
        version += 1
    return raw
