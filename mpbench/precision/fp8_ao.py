"""torchao: one recipe class (`AORecipe`) whose `scaling` option is torchao's float8 recipe
name or MXFP8, and the named presets. torchao is imported only when a recipe needs it.

float8 (torchao >= 0.9): convert_to_float8_training(model, module_filter_fn=...,
config=Float8LinearConfig.from_recipe_name(name)) swaps nn.Linear for Float8Linear in place,
keeping the parameter names, so weights initialised before the swap are the BF16 model's.

MXFP8 training, two upstream APIs found by feature (both read in pytorch/ao), each applied with
torchao.quantization.quantize_(model, config, filter_fn=...):
- newer: torchao.prototype.moe_training.config.MXFP8TrainingOpConfig.from_recipe(
  MXFP8TrainingRecipe.MXFP8_RCEIL), "the MXFP8 training config for nn.Linear layers and
  grouped GEMM ops"; quantize_ swaps each weight's data for an MXFP8TrainingWeightWrapperTensor;
- older: torchao.prototype.mx_formats.MXLinearConfig.from_recipe_name("mxfp8_cublas").
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from mpbench.precision import convert as converter
from mpbench.precision.base import cuda_capability_at_least
from mpbench.precision.fp8_base import Fp8Options, Fp8Recipe, Scaling, import_optional, preset

INSTALL = "pip install 'mpbench[fp8]'"
MX_MIN_VERSION = (0, 14)
NO_CACHE_NOTE = ("torchao saves the high-precision input and weight for backward and casts them "
                 "to FP8 again there: no FP8 weight copy outlives a GEMM")


@dataclasses.dataclass(frozen=True)
class AOScaling(Scaling):
    mx: bool = False
    """MXFP8 training (quantize_) rather than a Float8LinearConfig recipe name."""
    backward: str = "e4m3"
    """The output gradient's format, said before torchao is asked (then read from its config)."""
    capability: tuple[int, int] = (8, 9)


SCALINGS = {
    "tensorwise": AOScaling("dynamic tensorwise (amax of the current tensor)", backward="e5m2"),
    "rowwise": AOScaling("dynamic axiswise (amax per row of the current tensor), power-of-2 "
                         "scales"),
    "rowwise_with_gw_hp": AOScaling("dynamic axiswise (amax per row of the current tensor); the "
                                    "weight-gradient GEMM in high precision"),
    "mxfp8": AOScaling("MXFP8 block: one E8M0 (power-of-2) scale per 32 consecutive values",
                       mx=True, capability=(10, 0)),
}


class AOOptions(Fp8Options):
    scaling: Literal["tensorwise", "rowwise", "rowwise_with_gw_hp", "mxfp8"]  # SCALINGS
    scalings: ClassVar[Mapping[str, Scaling]] = SCALINGS


# -- torchao float8 -------------------------------------------------------------------------

def import_float8() -> tuple[ModuleType | None, str | None]:
    """(torchao.float8, None), or (None, the reason it cannot be used)."""
    float8, reason = import_optional("torchao.float8", "torchao", INSTALL)
    if float8 is None:
        return None, reason
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


def make_config(recipe_name: str, emulate: bool) -> Any:
    float8, reason = import_float8()
    if float8 is None:
        raise RuntimeError(reason)
    config = float8.Float8LinearConfig.from_recipe_name(recipe_name)
    return dataclasses.replace(config, emulate=True) if emulate else config


def convert_named(model: nn.Module, config: Any, names: list[str]) -> nn.Module:
    """Convert exactly the named layers (the FP8 filter's choice; Conv1D made nn.Linear first)
    with convert_to_float8_training."""
    float8, reason = import_float8()
    if float8 is None:
        raise RuntimeError(reason)
    chosen = set(names)
    converter.linearize(model, names)
    return float8.convert_to_float8_training(
        model, module_filter_fn=lambda mod, fqn: fqn in chosen, config=config)


def float8_linear_type() -> type | None:
    try:
        return importlib.import_module("torchao.float8.float8_linear").Float8Linear
    except Exception:
        return None


def _short(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.float8_").removesuffix("fn")


def granularity(config: Any) -> str:
    """How a Float8LinearConfig scales, read from it."""
    kind = str(config.cast_config_input.scaling_granularity.value)
    pow2 = ", scales rounded to powers of 2" if config.round_scales_to_power_of_2 else ""
    gw = getattr(config, "cast_config_input_for_grad_weight", None)
    hp = str(getattr(getattr(gw, "scaling_type", None), "value", "")) == "disabled"
    return (f"dynamic {kind} (amax of the current tensor{' per row' if kind == 'axiswise' else ''})"
            f"{pow2}{'; the weight-gradient GEMM in high precision' if hp else ''}")


# -- torchao MXFP8 training -----------------------------------------------------------------

def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("+")[0].split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def make_mx_config() -> tuple[Any, str | None]:
    """(config, None), or (None, why MXFP8 training is not available from this torchao)."""
    if (reason := import_optional("torchao", "torchao", INSTALL)[1]) is not None:
        return None, reason
    have = version()
    if have != "unknown" and _version_tuple(have) < MX_MIN_VERSION:
        return None, (f"torchao {have} is too old for MXFP8 training (needs >= "
                      f"{'.'.join(map(str, MX_MIN_VERSION))}); pip install -U 'mpbench[fp8]'")
    try:
        cfg = importlib.import_module("torchao.prototype.moe_training.config")
        return cfg.MXFP8TrainingOpConfig.from_recipe(cfg.MXFP8TrainingRecipe.MXFP8_RCEIL), None
    except (ImportError, AttributeError):
        pass
    try:
        mx = importlib.import_module("torchao.prototype.mx_formats")
        return mx.MXLinearConfig.from_recipe_name("mxfp8_cublas"), None
    except (ImportError, AttributeError, AssertionError, ValueError) as exc:
        return None, f"torchao {have} has no MXFP8 training config ({type(exc).__name__})"


def mx_convert_named(model: nn.Module, config: Any, names: list[str]) -> nn.Module:
    """quantize_ exactly the named layers (Conv1D made nn.Linear first)."""
    chosen = set(names)
    converter.linearize(model, names)
    quantize_ = importlib.import_module("torchao.quantization").quantize_
    quantize_(model, config, filter_fn=lambda mod, fqn: fqn in chosen)
    return model


def is_mx_module(module: nn.Module) -> bool:
    """MXLinear (older API) or a linear whose weight is an MXFP8 training tensor (newer)."""
    weight = getattr(module, "weight", None)
    return "MX" in type(module).__name__ or "MXFP8" in type(weight).__name__


# -- the recipe -----------------------------------------------------------------------------

class AORecipe(Fp8Recipe):
    """torchao's Float8Linear (or MXFP8 training) under BF16 autocast."""

    backend = "torchao"
    Options: ClassVar[type[AOOptions]] = AOOptions
    options: AOOptions
    _config: Any = None
    """The torchao config the model was converted with."""

    @property
    def spec(self) -> AOScaling:
        return SCALINGS[self.options.scaling]

    def check(self, device: torch.device) -> str | None:
        mx, name = self.spec.mx, self.options.scaling
        what = f"{self.name} ({'torchao MXFP8 training' if mx else f'torchao float8 {name}'})"
        if (reason := cuda_capability_at_least(device, *self.spec.capability, what)) is not None:
            return reason
        return make_mx_config()[1] if mx else unavailable(name)

    def convert(self, model: nn.Module, names: list[str], device: torch.device) -> nn.Module:
        if not self.spec.mx:
            self._config = make_config(self.options.scaling, emulate=False)
            return convert_named(model, self._config, names)
        config, reason = make_mx_config()
        if config is None:
            raise RuntimeError(reason)
        self._config = config
        return mx_convert_named(model, config, names)

    def is_fp8_module(self, module: nn.Module) -> bool:
        if self.spec.mx:
            return is_mx_module(module)
        cls = float8_linear_type()
        return cls is not None and isinstance(module, cls)

    def formats(self) -> dict[str, str]:
        if self.spec.mx:
            return {"forward": "e4m3", "weight": "e4m3", "backward": "e4m3",
                    "scales": "e8m0 per 32"}
        if (c := self._config) is None:
            return {"forward": "e4m3", "weight": "e4m3", "backward": self.spec.backward}
        return {"forward": _short(c.cast_config_input.target_dtype),
                "weight": _short(c.cast_config_weight.target_dtype),
                "backward": _short(c.cast_config_grad_output.target_dtype)}

    def weight_cache(self, fp8_modules: list[nn.Module]) -> tuple[int | None, str]:
        return 0, NO_CACHE_NOTE

    def telemetry(self, named: list[tuple[str, nn.Module]]) -> dict[str, Any]:
        return {"exposed": False, "note": "torchao dynamic scaling derives every scale from the "
                "tensor being cast and stores none"}

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        fp8, config = out["fp8"], self._config
        if config is not None:
            fp8["scaling"] = (f"{self.spec.words} ({type(config).__name__})" if self.spec.mx
                              else granularity(config))
        fp8["torchao_version"] = version() if config is not None else None
        fp8["compile"] = ("the training loop wraps the model in torch.compile when train.compile "
                          "is true" + ("" if self.spec.mx else " (torchao's fast path)") +
                          "; eager otherwise")
        return out


preset(AORecipe, "fp8-ao-tensorwise", "tensorwise", "torchao float8 training, 'tensorwise' recipe "
       "(E4M3 forward, E5M2 gradients, one dynamic scale per tensor), BF16 autocast elsewhere; "
       "compile with train.compile")
preset(AORecipe, "fp8-ao-rowwise", "rowwise", "torchao float8 training, 'rowwise' recipe (E4M3 "
       "everywhere, one power-of-2 scale per row), BF16 autocast elsewhere; compile with "
       "train.compile")
preset(AORecipe, "fp8-ao-mxfp8", "mxfp8", "torchao MXFP8 training (E4M3 values, one E8M0 scale "
       "per 32, RCEIL rounding), BF16 autocast elsewhere; needs Blackwell SM100 and "
       "torchao >= 0.14")
