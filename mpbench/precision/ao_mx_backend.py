"""torchao MXFP8 training, imported only when the recipe runs (mpbench imports without it).

Two upstream APIs, found by feature (both read in pytorch/ao):
- newer: torchao.prototype.moe_training.config.MXFP8TrainingOpConfig.from_recipe(
  MXFP8TrainingRecipe.MXFP8_RCEIL), "the MXFP8 training config for nn.Linear layers and
  grouped GEMM ops"; quantize_ swaps each weight's data for an MXFP8TrainingWeightWrapperTensor;
- older: torchao.prototype.mx_formats.MXLinearConfig.from_recipe_name("mxfp8_cublas").
Both are applied with torchao.quantization.quantize_(model, config, filter_fn=...).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from torch import nn

from mpbench.precision import ao_backend

MIN_VERSION = (0, 14)


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("+")[0].split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def make_config() -> tuple[Any, str | None]:
    """(config, None), or (None, why MXFP8 training is not available from this torchao)."""
    try:
        importlib.import_module("torchao")
    except ImportError:
        return None, f"torchao is not installed; {ao_backend.INSTALL}"
    except Exception as exc:
        return None, f"torchao failed to import ({type(exc).__name__}: {exc})"
    version = ao_backend.version()
    if version != "unknown" and _version_tuple(version) < MIN_VERSION:
        return None, (f"torchao {version} is too old for MXFP8 training (needs >= "
                      f"{'.'.join(map(str, MIN_VERSION))}); pip install -U 'mpbench[fp8]'")
    try:
        cfg = importlib.import_module("torchao.prototype.moe_training.config")
        return cfg.MXFP8TrainingOpConfig.from_recipe(cfg.MXFP8TrainingRecipe.MXFP8_RCEIL), None
    except (ImportError, AttributeError):
        pass
    try:
        mx = importlib.import_module("torchao.prototype.mx_formats")
        return mx.MXLinearConfig.from_recipe_name("mxfp8_cublas"), None
    except (ImportError, AttributeError, AssertionError, ValueError) as exc:
        return None, f"torchao {version} has no MXFP8 training config ({type(exc).__name__})"


def convert(model: nn.Module, config: Any, keep: Callable[[nn.Module, str], bool]) -> nn.Module:
    quantize_ = importlib.import_module("torchao.quantization").quantize_
    quantize_(model, config, filter_fn=keep)
    return model


def is_mx_module(module: nn.Module) -> bool:
    """MXLinear (older API) or a linear whose weight is an MXFP8 training tensor (newer)."""
    weight = getattr(module, "weight", None)
    return "MX" in type(module).__name__ or "MXFP8" in type(weight).__name__
