"""NVIDIA TransformerEngine, imported only when a TE recipe runs (mpbench imports without it).

API facts checked against the TE sources (tags v2.0 .. v2.18, main):
- recipes live in transformer_engine.common.recipe: DelayedScaling (all 2.x), MXFP8BlockScaling
  (>= 2.0), Float8CurrentScaling (>= 2.2), Float8BlockScaling (>= 2.3);
- the context manager is te.autocast(recipe=...) from 2.9, te.fp8_autocast(fp8_recipe=...)
  before (deprecated after); we pick by feature, not by version string;
- support checks: te.is_fp8_available(return_reason=True) and friends from 2.9, before that
  transformer_engine.pytorch.fp8.check_fp8_support() and friends, each -> (ok, reason);
- te.Linear registers its parameters as `weight` and `bias` (no parameters_split), so
  the converter copies an nn.Linear's values into them under the same names;
- without is_first_microbatch TE keeps no persistent FP8 weight cache: each step quantizes
  the weight (row-wise copy for the forward GEMM, column-wise/transposed copy for dgrad) and
  holds both from forward to backward.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

import torch
from torch import nn

from mpbench.precision import convert as converter
from mpbench.precision.fp8_base import linear_dims

INSTALL = "pip install 'mpbench[te]'"
UPGRADE = "pip install -U 'mpbench[te]'"

RECIPE_SINCE = {
    "DelayedScaling": "1.0",
    "MXFP8BlockScaling": "2.0",
    "Float8CurrentScaling": "2.2",
    "Float8BlockScaling": "2.3",
    "NVFP4BlockScaling": "2.8",
}
"""First TransformerEngine release that has each recipe class."""

SUPPORT_CHECKS = {  # kind -> (TE >= 2.9 name, older transformer_engine.pytorch.fp8 name)
    "fp8": ("is_fp8_available", "check_fp8_support"),
    "block": ("is_fp8_block_scaling_available", "check_fp8_block_scaling_support"),
    "mxfp8": ("is_mxfp8_available", "check_mxfp8_support"),
    "nvfp4": ("is_nvfp4_available", "check_nvfp4_support"),
}


def import_te() -> tuple[ModuleType | None, str | None]:
    """(transformer_engine.pytorch, None), or (None, why it cannot be used)."""
    try:
        te = importlib.import_module("transformer_engine.pytorch")
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] == "transformer_engine":
            return None, f"TransformerEngine is not installed; {INSTALL}"
        return None, f"TransformerEngine failed to import ({exc}); reinstall it: {INSTALL}"
    except Exception as exc:  # TE loads CUDA libraries at import and can fail in many ways
        return None, f"TransformerEngine failed to import ({type(exc).__name__}: {exc})"
    return te, None


def version() -> str:
    try:
        return str(importlib.import_module("transformer_engine").__version__)
    except Exception:
        return "unknown"


def recipe_class(class_name: str) -> tuple[type | None, str | None]:
    try:
        recipes = importlib.import_module("transformer_engine.common.recipe")
    except Exception as exc:
        return None, f"transformer_engine.common.recipe failed to import ({exc}); {INSTALL}"
    cls = getattr(recipes, class_name, None)
    if cls is None:
        return None, (f"TransformerEngine {version()} is too old for {class_name} (needs >= "
                      f"{RECIPE_SINCE.get(class_name, '?')}); {UPGRADE}")
    return cls, None


def support_reason(te: ModuleType, kind: str) -> str | None:
    """TE's own verdict for this GPU (compute capability, CUDA and cuBLASLt versions)."""
    new_name, old_name = SUPPORT_CHECKS[kind]
    check: Callable[..., Any] | None = getattr(te, new_name, None)
    if check is not None:
        ok, reason = check(return_reason=True)
    else:
        try:
            legacy = importlib.import_module("transformer_engine.pytorch.fp8")
        except Exception:
            return None
        old: Callable[[], tuple[bool, str]] | None = getattr(legacy, old_name, None)
        if old is None:
            return f"TransformerEngine {version()} has no {old_name}; {UPGRADE}"
        ok, reason = old()
    return None if ok else f"TransformerEngine: {reason}"


def fp8_autocast(te: ModuleType, recipe: Any) -> Any:
    """The TE context manager that turns FP8 on for TE modules, by feature detection."""
    if hasattr(te, "autocast"):
        return te.autocast(enabled=True, recipe=recipe)
    return te.fp8_autocast(enabled=True, fp8_recipe=recipe)


def make_linear(te: ModuleType, linear: nn.Linear, params_dtype: torch.dtype,
                device: torch.device | None = None) -> nn.Module:
    """A te.Linear with `linear`'s shape and values (copied into TE's own parameters).

    te.Linear is built on `device`, else the current CUDA device (TE's default is "cuda").
    """
    where = device if device is not None else torch.device("cuda", torch.cuda.current_device())
    layer = te.Linear(linear.in_features, linear.out_features, bias=linear.bias is not None,
                      params_dtype=params_dtype, device=where)
    return converter.copy_parameters(layer, linear)


def format_enum(name: str) -> Any:
    return getattr(importlib.import_module("transformer_engine.common.recipe").Format, name)


def format_names(name: str) -> dict[str, str]:
    """TE Format name -> the element formats of the forward and backward GEMM operands."""
    if name == "HYBRID":
        return {"forward": "e4m3", "backward": "e5m2"}
    return {"forward": name.lower(), "backward": name.lower()}


def weight_copy_bytes(modules: list[nn.Module], kind: str) -> tuple[int, str]:
    """Bytes of the FP8 weight copies TE holds per step, from the layer shapes."""
    elems = sum(math.prod(linear_dims(m)) for m in modules)
    if kind == "mxfp8":  # row- and column-wise data + one E8M0 scale per 32 values each
        return 2 * elems + 2 * (elems // 32), (
            "estimate: row-wise and column-wise MXFP8 copies of each weight (1 byte/value) "
            "plus 1-byte scales per 32 values, held from forward to backward each step")
    if kind == "block":  # 128x128 weight blocks, one fp32 scale each, for both copies
        return 2 * elems + 2 * 4 * (elems // (128 * 128) + len(modules)), (
            "estimate: row-wise and column-wise FP8 copies of each weight (1 byte/value) plus "
            "fp32 scales per 128x128 block, held from forward to backward each step")
    return 2 * elems, (
        "estimate: an FP8 copy of each weight for the forward GEMM and a transposed FP8 copy "
        "for dgrad (1 byte/value each), held from forward to backward each step; TE keeps no "
        "persistent cache unless is_first_microbatch is used")


_QUANTIZED_PARTS = ("_data", "_transpose", "_rowwise_data", "_columnwise_data", "_scale_inv",
                    "_rowwise_scale_inv", "_columnwise_scale_inv")


def persistent_cache_bytes(modules: list[nn.Module]) -> int:
    """Measured bytes of FP8 weight workspaces TE keeps between steps (_fp8_workspaces)."""
    total = 0
    for module in modules:
        for cached in getattr(module, "_fp8_workspaces", {}).values():
            for part in _QUANTIZED_PARTS:
                tensor = getattr(cached, part, None)
                if isinstance(tensor, torch.Tensor):
                    total += tensor.numel() * tensor.element_size()
    return total


def delayed_scaling_telemetry(named: list[tuple[str, nn.Module]]) -> dict[str, Any]:
    """scale and amax (max over the history window) of input, weight and output gradient."""
    layers: dict[str, dict[str, float]] = {}
    for name, module in named:
        meta = getattr(module, "fp8_meta", None)
        try:
            fwd, bwd = meta["scaling_fwd"], meta["scaling_bwd"]  # type: ignore[index]
            fwd_amax = fwd.amax_history.amax(dim=0)  # (num_quantizers,)
            bwd_amax = bwd.amax_history.amax(dim=0)
            layers[name] = {  # TE's slots: fwd 0 input, 1 weight; bwd 0 grad_output
                "input_scale": float(fwd.scale[0]), "input_amax": float(fwd_amax[0]),
                "weight_scale": float(fwd.scale[1]), "weight_amax": float(fwd_amax[1]),
                "grad_output_scale": float(bwd.scale[0]), "grad_output_amax": float(bwd_amax[0]),
            }
        except (TypeError, KeyError, AttributeError, IndexError):
            continue
    if not layers:
        return {"exposed": False, "note": "TE exposed no fp8_meta scaling state"}
    return {"exposed": True, "source": "te fp8_meta (delayed scaling state)", "layers": layers}
