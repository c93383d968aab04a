"""Load a suite file: parse, merge the device profile, validate everything before any run."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from mpbench.config.errors import dotted, first_error
from mpbench.config.matrix import train_variants
from mpbench.config.schema import DeviceKind, ModelSpec, Suite, TrainConfig, unknown_name
from mpbench.errors import UserError
from mpbench.models.config import MODEL_SIZES, ModelConfig


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


def _check_options(
    owner: str, name: str, options: dict[str, Any], model: type[BaseModel], path: Path
) -> None:
    try:
        model.model_validate(options)
    except ValidationError as exc:
        raise UserError(f"{path}: {first_error(exc, model, (owner, 'options'))}") from None


def check_semantics(suite: Suite, path: Path, override: dict[str, Any], kind: str) -> None:
    """Checks that need the registries or cross-field knowledge."""
    from mpbench.analysis.claims_index import CLAIM_IDS
    from mpbench.precision import RECIPES
    from mpbench.profile import PROFILERS

    def at(key: str) -> str:  # name the device section when the key came from it
        return f"devices.{kind}.{key}" if key in override else key

    for i, spec in enumerate(suite.precisions):
        if spec.name not in RECIPES:
            raise UserError(f"{path}: {at('precisions')}[{i}]: {unknown_name('precision', spec.name, RECIPES)}")
        _check_options(f"{at('precisions')}[{i}]", spec.name, spec.options, RECIPES[spec.name].Options, path)
    for i, spec in enumerate(suite.profilers):
        if spec.name not in PROFILERS:
            raise UserError(f"{path}: {at('profilers')}[{i}]: {unknown_name('profiler', spec.name, PROFILERS)}")
        _check_options(f"{at('profilers')}[{i}]", spec.name, spec.options, PROFILERS[spec.name].Options, path)
    for train in train_variants(suite, path):
        check_shapes(suite, train, path, at)
    if suite.data.source in ("text", "bin"):
        data_path = Path(suite.data.path or "")
        if not data_path.is_absolute():
            data_path = (path.parent / data_path) if (path.parent / data_path).exists() else data_path
        if not data_path.is_file():
            raise UserError(f"{path}: {at('data')}.path: file not found: {suite.data.path}; give an existing file")
    if suite.parallel is not None and suite.parallel.world_size is not None:
        from mpbench.distributed.config import batch_problem

        problem = batch_problem(suite.train.batch_size, suite.parallel.world_size)
        if problem:
            raise UserError(f"{path}: {at('train')}.batch_size (the global batch): {problem} "
                            f"({at('parallel')}.world_size)")
    # Sections owned by optional components are validated by their owners' schemas.
    from mpbench.analysis.convergence import ConvergenceOptions

    owners: dict[str, type[BaseModel]] = {"convergence": ConvergenceOptions}
    for key, section in suite.extensions.items():
        if key not in owners:
            raise UserError(f"{path}: {at('extensions')}.{key}: "
                            f"{unknown_name('extension', key, owners)}")
        try:
            owners[key].model_validate(section or {})
        except ValidationError as exc:
            raise UserError(f"{path}: {first_error(exc, owners[key], ('extensions', key))}") from None
    for i, claim in enumerate(suite.claims):
        if claim not in CLAIM_IDS:
            raise UserError(f"{path}: claims[{i}]: {unknown_name('claim id', claim, CLAIM_IDS)}")


def check_shapes(suite: Suite, train: TrainConfig, path: Path, at: Callable[[str], str]) -> None:
    """Model dimensions against one train setting (sequence length, FP8 divisibility)."""
    from mpbench.precision import get_recipe

    seq_len = train.seq_len
    for i, model in enumerate(suite.models):
        if model.kind != "reference":
            check_entry(suite, model, i, train, path, at)
            continue
        base = MODEL_SIZES[model.size] if model.size else None
        block = model.block_size or (base.block_size if base else seq_len)
        if seq_len > block:
            raise UserError(
                f"{path}: {at('train')}.seq_len: {seq_len} is over the maximum {block} of "
                f"{at('models')}[{i}] ({model.label}); lower train.seq_len or set that model's block_size"
            )
        n_head = model.n_head or (base.n_head if base else 1)
        n_embd = model.n_embd or (base.n_embd if base else n_head)
        if n_embd % n_head:
            raise UserError(
                f"{path}: {at('models')}[{i}].n_embd: {n_embd} is not divisible by n_head {n_head}"
            )
    for i, model in enumerate(suite.models):
        for j, spec in enumerate(suite.precisions):
            recipe = get_recipe(spec.name, spec.options)
            cfg = model_dims(model, train.seq_len)
            problem = recipe.check_shapes(cfg, train.batch_size, train.seq_len)
            if problem:
                raise UserError(f"{path}: {at('models')}[{i}] with {at('precisions')}[{j}] "
                                f"({spec.name}): {problem}")


def model_dims(model: ModelSpec, seq_len: int) -> ModelConfig | None:
    """The reference model's dimensions as far as they are known before the data is read
    (None for Hugging Face and user models)."""
    from mpbench.models.entry import resolve_model_config

    if model.kind != "reference":
        return None
    return resolve_model_config(model, seq_len, model.vocab_size or 256)


def data_vocab(suite: Suite, path: Path) -> int:
    """The data's vocabulary as the run will see it (token-bin files are read for their max)."""
    if suite.data.source == "synthetic":
        return suite.data.vocab_size
    if suite.data.source != "bin":
        return 256  # byte-level corpora
    import numpy as np

    file = Path(suite.data.path or "")
    file = (path.parent / file) if (path.parent / file).exists() else file
    data = np.memmap(file, dtype=np.uint16, mode="r") if file.is_file() else np.zeros(0, np.uint16)
    return max(suite.data.vocab_size, int(data.max()) + 1) if data.size else suite.data.vocab_size


def check_entry(suite: Suite, model: ModelSpec, i: int, train: TrainConfig, path: Path,
                at: Callable[[str], str]) -> None:
    """A Hugging Face or user model: buildable, big enough for the data, long enough."""
    from mpbench.models.entry import ModelEntryError, check_fits, model_facts

    where = f"{path}: {at('models')}[{i}]"
    try:
        facts = model_facts(model, train.seq_len, 0, path.parent)
    except ModelEntryError as exc:
        raise UserError(f"{where}.{exc.field}: {exc.message}") from None
    problem = check_fits(facts, train.seq_len, data_vocab(suite, path))
    if problem is not None and problem.field == "seq_len":
        raise UserError(f"{path}: {at('train')}.seq_len: {problem.message} ({at('models')}[{i}], "
                        f"{model.label})")
    if problem is not None:
        raise UserError(f"{where}.{problem.field}: {problem.message} (data.source "
                        f"{suite.data.source})")


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


def load_suite(path: str | Path, device_kind: DeviceKind) -> Suite:
    """Validate the base suite and every device profile; return the one for `device_kind`."""
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
        check_semantics(suite, path, override, kind)
        resolved[kind] = suite
    return resolved[device_kind]


__all__ = ["deep_merge", "dotted", "load_suite", "read_yaml"]
