"""Plan a suite: the schema load (mpbench.config) plus the checks that need registries.

Recipe, profiler and claim names, recipe and profiler options, model shapes against
recipes (FP8 divisibility), Hugging Face and user models, data files and the global batch:
all checked for every device profile before any run starts, with the dotted path of the
key at fault. Everything that loads a suite to run it loads it here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from mpbench.config.claim_ids import CLAIM_IDS
from mpbench.config.errors import first_error, unknown_name
from mpbench.config.loader import load_suite_schema, train_variants
from mpbench.config.model_sizes import MODEL_SIZES, ModelConfig
from mpbench.config.parallel import batch_problem
from mpbench.config.schema import EXTENSIONS, DeviceKind, ModelSpec, Suite, TrainConfig
from mpbench.errors import ModelEntryError, UserError


def load_suite(path: str | Path, device_kind: DeviceKind) -> Suite:
    """Validate the suite and every device profile, schema and registries; return the
    profile for `device_kind`."""
    return load_suite_schema(path, device_kind, check=check_semantics)


def _check_options(
    owner: str, name: str, options: dict[str, Any], model: type[BaseModel], path: Path
) -> None:
    try:
        model.model_validate(options)
    except ValidationError as exc:
        raise UserError(f"{path}: {first_error(exc, model, (owner, 'options'))}") from None


def check_semantics(suite: Suite, path: Path, override: dict[str, Any], kind: str) -> None:
    """Checks that need the registries or cross-field knowledge."""
    from mpbench.precision import RECIPES
    from mpbench.profilers import PROFILERS

    def at(key: str) -> str:  # name the device section when the key came from it
        return f"devices.{kind}.{key}" if key in override else key

    for i, spec in enumerate(suite.precisions):
        if spec.name not in RECIPES:
            raise UserError(f"{path}: {at('precisions')}[{i}]: {unknown_name('precision', spec.name, RECIPES)}")
        _check_options(f"{at('precisions')}[{i}]", spec.name, spec.options, RECIPES[spec.name].Options, path)
    for i, prof in enumerate(suite.profilers):
        if prof.name not in PROFILERS:
            raise UserError(f"{path}: {at('profilers')}[{i}]: {unknown_name('profiler', prof.name, PROFILERS)}")
        _check_options(f"{at('profilers')}[{i}]", prof.name, prof.options, PROFILERS[prof.name].Options, path)
    for train in train_variants(suite, path):
        check_shapes(suite, train, path, at)
    if suite.data.source in ("text", "bin"):
        data_path = Path(suite.data.path or "")
        if not data_path.is_absolute():
            data_path = (path.parent / data_path) if (path.parent / data_path).exists() else data_path
        if not data_path.is_file():
            raise UserError(f"{path}: {at('data')}.path: file not found: {suite.data.path}; give an existing file")
    if suite.parallel is not None and suite.parallel.world_size is not None:
        problem = batch_problem(suite.train.batch_size, suite.parallel.world_size)
        if problem:
            raise UserError(f"{path}: {at('train')}.batch_size (the global batch): {problem} "
                            f"({at('parallel')}.world_size)")
    # Sections owned by optional components are validated by their owners' schemas.
    owners = EXTENSIONS
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
    from mpbench.models.entry import check_fits, model_facts

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


__all__ = ["check_semantics", "load_suite", "model_dims"]
