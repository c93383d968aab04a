"""torchao float8 training, imported only when a recipe needs it (mpbench imports without it).

API (torchao >= 0.9): convert_to_float8_training(model, module_filter_fn=...,
config=Float8LinearConfig.from_recipe_name("tensorwise" | "rowwise")) swaps nn.Linear for
Float8Linear in place, keeping the parameter names, so weights initialised before the swap
are the BF16 model's weights.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

import torch
from torch import nn

from mpbench.precision import convert as converter
from mpbench.precision.fp8_base import LM_HEAD, fp8_shape_ok

INSTALL = "pip install 'mpbench[fp8]'"


def import_float8() -> tuple[ModuleType | None, str | None]:
    """(torchao.float8, None), or (None, the reason it cannot be used)."""
    try:
        float8 = importlib.import_module("torchao.float8")
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] == "torchao":
            return None, f"torchao is not installed; {INSTALL}"
        return None, f"torchao failed to import ({exc}); reinstall it: {INSTALL}"
    except Exception as exc:  # a broken install can raise anything at import time
        return None, f"torchao failed to import ({type(exc).__name__}: {exc}); reinstall: {INSTALL}"
    config = getattr(float8, "Float8LinearConfig", None)
    if config is None or not hasattr(config, "from_recipe_name") or not hasattr(
            float8, "convert_to_float8_training"):
        return None, (f"torchao {version()} is too old (no Float8LinearConfig.from_recipe_name); "
                      f"pip install -U 'mpbench[fp8]'")
    return float8, None


def version() -> str:
    try:
        return str(importlib.import_module("torchao").__version__)
    except Exception:
        return "unknown"


def unavailable(recipe_name: str) -> str | None:
    float8, reason = import_float8()
    if float8 is None:
        return reason
    try:
        float8.Float8LinearConfig.from_recipe_name(recipe_name)
    except (ValueError, KeyError) as exc:
        return f"torchao {version()} does not know the float8 recipe {recipe_name!r} ({exc})"
    return None


def module_filter(mod: nn.Module, fqn: str) -> bool:
    """Convert every block linear with FP8-legal shapes; never the LM head.

    torchao's auto filter would also skip small layers that it expects to be slower in
    FP8; we keep them so the record shows FP8 on every eligible GEMM.
    """
    if not isinstance(mod, nn.Linear) or fqn == LM_HEAD or fqn.endswith("." + LM_HEAD):
        return False
    return fp8_shape_ok(mod.in_features, mod.out_features)


def make_config(recipe_name: str, emulate: bool) -> Any:
    float8, reason = import_float8()
    if float8 is None:
        raise RuntimeError(reason)
    config = float8.Float8LinearConfig.from_recipe_name(recipe_name)
    return dataclasses.replace(config, emulate=True) if emulate else config


def convert(model: nn.Module, config: Any,
            keep: Callable[[nn.Module, str], bool] = module_filter) -> nn.Module:
    float8, reason = import_float8()
    if float8 is None:
        raise RuntimeError(reason)
    return float8.convert_to_float8_training(model, module_filter_fn=keep, config=config)


def convert_named(model: nn.Module, config: Any, names: list[str]) -> nn.Module:
    """Convert exactly the named layers (the FP8 filter's choice; Conv1D made nn.Linear first)."""
    chosen = set(names)
    converter.linearize(model, names)
    return convert(model, config, keep=lambda mod, fqn: fqn in chosen)


def float8_linear_type() -> type | None:
    try:
        return importlib.import_module("torchao.float8.float8_linear").Float8Linear
    except Exception:
        return None


def _short(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.float8_").removesuffix("fn")


def formats(config: Any) -> dict[str, str]:
    """The FP8 formats the config uses, read from it (rowwise keeps grads in e4m3)."""
    return {
        "forward": _short(config.cast_config_input.target_dtype),
        "weight": _short(config.cast_config_weight.target_dtype),
        "backward": _short(config.cast_config_grad_output.target_dtype),
    }


def granularity(config: Any) -> str:
    kind = str(config.cast_config_input.scaling_granularity.value)
    pow2 = ", scales rounded to powers of 2" if config.round_scales_to_power_of_2 else ""
    return f"dynamic {kind} (amax of the current tensor{' per row' if kind == 'axiswise' else ''}){pow2}"
