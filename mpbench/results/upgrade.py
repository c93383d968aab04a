"""Bring a stored record (a dict from JSON) up to SCHEMA_VERSION, one version step at a time.

Applied by every loader (results/store.parse_record), so results written by older mpbench
(the committed examples under reports/ are schema 1) load, show, report and gate.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from mpbench.config.loader import IN_RUN_ID
from mpbench.results.key import ConfigKey, ParallelKey, key_settings
from mpbench.results.schema import SCHEMA_VERSION

_PARALLEL_TAG = re.compile(r"^(?P<strategy>[a-z0-9]+)-(?P<comm>[a-z0-9]+?)comm"
                           r"(?:-p(?P<param>[a-z0-9]+?))?(?:-w(?P<world>\d+))?$")


def _parallel_from_tag(tag: str) -> ParallelKey | None:
    """The parallel key from a run id's tag (config/parallel.parallel_tag writes it)."""
    m = _PARALLEL_TAG.match(tag)
    if m is None:
        return None
    return ParallelKey(strategy=m["strategy"], grad_comm_dtype=m["comm"], param_dtype=m["param"],
                       world_size=int(m["world"]) if m["world"] else None)


def derive_key(raw: dict[str, Any]) -> ConfigKey:
    """The key of a record (or run summary) that has none, from its run id and settings.

    The run id reads `<model>[-<matrix tags>]__<precision>[-<options tag>]__b<B>-t<T>[-ckpt]
    [-compiled][__<parallel tag>]__seed<S>[-r<R>]`; matrix settings come from the suite config
    stored in the record, else from the tags in the run id that match a train setting.
    """
    run_id, model, precision = str(raw["run_id"]), str(raw["model"]), str(raw["precision"])
    parts = run_id.split("__")
    label = parts[1] if len(parts) >= 4 and parts[1].startswith(precision) else precision
    train = dict(raw.get("train") or {})
    train.setdefault("batch_size", raw["batch_size"])
    train.setdefault("seq_len", raw["seq_len"])
    suite = raw.get("suite_config") or {}
    matrix = list((suite.get("matrix") or {}) if isinstance(suite, dict) else {})
    head = parts[0]
    tag = head[len(model):] if head.startswith(model) else ""
    if not matrix and tag:
        matrix = [k for k in train if k not in IN_RUN_ID and f"-{k}{train[k]}" in tag]
    parallel = _parallel_from_tag(parts[3]) if len(parts) >= 5 else None
    return ConfigKey(model=model, recipe_id=label, batch_size=int(train["batch_size"]),
                     seq_len=int(train["seq_len"]), settings=key_settings(train, matrix),
                     parallel=parallel, profile=str(raw.get("profile", "")))


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


def renamed_key_fields(key: dict[str, Any]) -> dict[str, Any]:
    """A stored config_key as schema 4 spells it: `precision` (the recipe name plus its
    options tag) is called `recipe_id`. Records and old pytest-benchmark exports both."""
    if "precision" not in key:
        return key
    return {("recipe_id" if k == "precision" else k): v for k, v in key.items()}


def _v3_to_v4(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 4 calls the key's recipe name plus options tag `recipe_id` (was `precision`,
    which on the record is the recipe name alone); the run id is unchanged."""
    key = raw.get("config_key")
    if isinstance(key, dict):
        raw = {**raw, "config_key": renamed_key_fields(key)}
    return {**raw, "schema_version": 4}


def _v4_to_v5(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 5 stores the tensor_cores profile's plain steps one by one (`plain_step_us`,
    timed before the profiler starts); version 4's `plain_time_us` summed `steps` plain steps
    timed between the profiled ones: kept as their mean, one entry."""
    results = raw.get("profiler_results")
    tc = results.get("tensor_cores") if isinstance(results, dict) else None
    if isinstance(results, dict) and isinstance(tc, dict) and "plain_time_us" in tc:
        kept = {k: v for k, v in tc.items() if k != "plain_time_us"}
        total = tc["plain_time_us"]
        kept["plain_step_us"] = [total / (tc.get("steps") or 1)] if total is not None else []
        raw = {**raw, "profiler_results": {**results, "tensor_cores": kept}}
    return {**raw, "schema_version": 5}


STEPS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4, 4: _v4_to_v5}
"""From version N to N+1."""


def upgrade(raw: dict[str, Any]) -> dict[str, Any]:
    """The record at SCHEMA_VERSION; raises KeyError/TypeError/ValueError on a broken one."""
    version = int(raw.get("schema_version", 1))
    while version < SCHEMA_VERSION:
        raw = STEPS[version](raw)
        version += 1
    return raw
