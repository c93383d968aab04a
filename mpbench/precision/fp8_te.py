"""TransformerEngine recipes: one module per backend (as torchtitan's float8 converter).

The shared part: availability, te.Linear layers, the context managers (BF16 autocast
outside, TE's FP8 autocast for the te.Linear GEMMs). Then one small class per TE recipe
(DelayedScaling, Float8CurrentScaling, Float8BlockScaling, MXFP8BlockScaling,
NVFP4BlockScaling): a new TE scaling recipe is a class here.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from mpbench.config.schema import TrainConfig
from mpbench.precision import convert as converter
from mpbench.precision import te_backend
from mpbench.precision.base import RecipeOptions, cuda_capability_at_least, register
from mpbench.precision.fp8_base import Fp8Options, Fp8Recipe, linear_dims


class TEOptions(Fp8Options):
    params_dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="dtype of the te.Linear parameters (float32 keeps FP32 master "
        "weights, as the bf16 recipe does)")


class FormatOptions(TEOptions):
    """Options of the per-tensor recipes, which let the suite pick the FP8 format."""

    fp8_format: Literal["HYBRID", "E4M3"] = Field(
        "HYBRID", description="HYBRID: E4M3 forward, E5M2 gradients; E4M3: E4M3 everywhere")


class TERecipe(Fp8Recipe):
    backend = "te"
    Options: ClassVar[type[RecipeOptions]] = TEOptions
    options: TEOptions
    te_class: ClassVar[str]
    """Recipe class in transformer_engine.common.recipe."""
    support_kind: ClassVar[str] = "fp8"
    """Which TE support check applies: fp8, block or mxfp8."""
    min_capability: ClassVar[tuple[int, int]] = (8, 9)

    def __init__(self, options: RecipeOptions | None = None) -> None:
        super().__init__(options)
        self._te_recipe: Any = None

    # -- what the subclasses say ---------------------------------------------------
    def recipe_kwargs(self) -> dict[str, Any]:
        return {}

    def fp8_format(self) -> str:
        """TE Format name: HYBRID (E4M3 forward, E5M2 backward) or E4M3 (the suite's choice
        where the options have one, FormatOptions)."""
        return self.options.fp8_format if isinstance(self.options, FormatOptions) else "E4M3"

    # -- availability --------------------------------------------------------------------
    def check(self, device: torch.device) -> str | None:
        what = f"{self.name} (TransformerEngine {self.te_class})"
        reason = cuda_capability_at_least(device, *self.min_capability, what)
        if reason is not None:
            return reason
        te, reason = te_backend.import_te()
        if te is None:
            return reason
        _, reason = te_backend.recipe_class(self.te_class)
        if reason is not None:
            return reason
        return te_backend.support_reason(te, self.support_kind)

    # -- building --------------------------------------------------------------------
    def _te(self) -> Any:
        te, reason = te_backend.import_te()
        if te is None:
            raise RuntimeError(reason)
        return te

    def te_recipe(self) -> Any:
        """One TE recipe object for the whole run (TE keys its scaling state on it)."""
        if self._te_recipe is None:
            cls, reason = te_backend.recipe_class(self.te_class)
            if cls is None:
                raise RuntimeError(reason)
            fmt = te_backend.format_enum(self.fp8_format())
            self._te_recipe = cls(fp8_format=fmt, **self.recipe_kwargs())
        return self._te_recipe

    def convert(self, model: nn.Module, names: list[str], device: torch.device) -> nn.Module:
        te = self._te()
        dtype = torch.float32 if self.options.params_dtype == "float32" else torch.bfloat16
        return converter.swap(model, names,
                              lambda linear: te_backend.make_linear(te, linear, dtype, device))

    def check_train(self, train: TrainConfig) -> str | None:
        if train.activation_checkpointing:
            # torch.utils.checkpoint replays the forward in backward, outside TE's FP8
            # autocast, so the recomputed te.Linear would not match the FP8 forward.
            return (f"{self.name}: train.activation_checkpointing is not supported with "
                    "TransformerEngine here (it needs te.distributed.checkpoint); set it to false")
        return None

    def is_fp8_module(self, module: nn.Module) -> bool:
        te, _ = te_backend.import_te()
        return te is not None and isinstance(module, te.Linear)

    @contextlib.contextmanager
    def _contexts(self, device: torch.device) -> Iterator[None]:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16), \
                te_backend.fp8_autocast(self._te(), self.te_recipe()):
            yield

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        return self._contexts(device)

    # -- the record ------------------------------------------------------------------
    def formats(self) -> dict[str, str]:
        return te_backend.format_names(self.fp8_format())

    def weight_cache(self, fp8_modules: list[nn.Module]) -> tuple[int | None, str]:
        return te_backend.weight_copy_bytes(fp8_modules, self.support_kind)

    def telemetry(self, named: list[tuple[str, nn.Module]]) -> dict[str, Any]:
        modules = [module for _, module in named]
        return {"exposed": False, "note": f"{self.te_class} computes scales from each tensor on "
                "the fly and keeps none between steps",
                "persistent_fp8_weight_cache_bytes": te_backend.persistent_cache_bytes(modules)}

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["fp8"]["te_version"] = te_backend.version() if te_backend.import_te()[0] else None
        out["fp8"]["te_recipe"] = repr(self._te_recipe) if self._te_recipe is not None else None
        out["fp8"]["params_dtype"] = self.options.params_dtype
        return out


# -- fp8-te-delayed: TransformerEngine DelayedScaling (scales from a history of past amaxes).
class DelayedOptions(FormatOptions):
    amax_history_len: int = Field(1024, ge=1, description="steps of amax history per tensor")
    amax_compute_algo: Literal["max", "most_recent"] = Field(
        "max", description="amax taken from the history: its maximum or the latest value")
    margin: int = Field(0, ge=0, description="scale = fp8_max / amax / 2^margin")


@register
class TEDelayed(TERecipe):
    name = "fp8-te-delayed"
    summary = ("TransformerEngine FP8, DelayedScaling (HYBRID: E4M3 forward, E5M2 backward; "
               "per-tensor scales from an amax history), BF16 autocast elsewhere")
    te_class = "DelayedScaling"
    scaling = "delayed per-tensor: scale from the amax history of earlier steps"
    Options: ClassVar[type[RecipeOptions]] = DelayedOptions
    options: DelayedOptions

    def compile_refusal(self, train: TrainConfig) -> str | None:
        return (f"{self.name}: TransformerEngine's DelayedScaling does not run under "
                "torch.compile, so this run is eager (fp8-te-current compiles)")

    def recipe_kwargs(self) -> dict[str, Any]:
        return {"amax_history_len": self.options.amax_history_len,
                "amax_compute_algo": self.options.amax_compute_algo,
                "margin": self.options.margin}

    def amax_history_len(self) -> int | None:
        return self.options.amax_history_len

    def telemetry(self, named: list[tuple[str, nn.Module]]) -> dict[str, Any]:
        modules = [module for _, module in named]
        return {**te_backend.delayed_scaling_telemetry(named),
                "persistent_fp8_weight_cache_bytes": te_backend.persistent_cache_bytes(modules)}


# -- fp8-te-current: TransformerEngine Float8CurrentScaling (per-tensor scale from this step).
class CurrentOptions(FormatOptions):
    """The format choice only: the scale comes from the tensor being cast."""


@register
class TECurrent(TERecipe):
    name = "fp8-te-current"
    summary = ("TransformerEngine FP8, Float8CurrentScaling (per-tensor scale from the current "
               "amax; needs TE >= 2.2), BF16 autocast elsewhere")
    te_class = "Float8CurrentScaling"
    scaling = "current per-tensor: scale = fp8_max / amax of the tensor being cast"
    Options: ClassVar[type[RecipeOptions]] = CurrentOptions
    options: CurrentOptions


# -- fp8-te-block: TransformerEngine Float8BlockScaling (DeepSeek-V3 style blocks; SM90+).
@register
class TEBlock(TERecipe):
    name = "fp8-te-block"
    summary = ("TransformerEngine FP8, Float8BlockScaling (E4M3, power-of-2 scales per 1x128 "
               "activation tile and 128x128 weight block; Hopper+, TE >= 2.3, CUDA >= 12.9)")
    te_class = "Float8BlockScaling"
    support_kind = "block"
    min_capability = (9, 0)
    scaling = ("block: one scale (power of 2 by TE default) per 1x128 tile of activations and "
               "gradients, per 128x128 block of weights")


# -- fp8-te-mxfp8: TransformerEngine MXFP8BlockScaling (OCP microscaling; Blackwell, SM100+).
@register
class TEMXFP8(TERecipe):
    name = "fp8-te-mxfp8"
    summary = ("TransformerEngine MXFP8BlockScaling (E4M3 values, one E8M0 power-of-2 scale per "
               "32 values; Blackwell SM100+ only, not H100/H200)")
    te_class = "MXFP8BlockScaling"
    support_kind = "mxfp8"
    min_capability = (10, 0)
    scaling = "MXFP8 block: one E8M0 (power-of-2) scale per 32 consecutive values"


# -- fp4-te-nvfp4: TransformerEngine NVFP4BlockScaling (FP4 E2M1 GEMMs; Blackwell SM100+, TE >= 2.8).
# Read upstream in transformer_engine/common/recipe/__init__.py: NVFP4BlockScaling is a
# 2-level block scaling, one E4M3 scale per 16 consecutive values and one FP32 scale per
# tensor, `fp4_format` E2M1 and `fp8_format` E4M3 (both asserted in __post_init__), with
# random Hadamard transforms, stochastic rounding and 2D weight quantization on by default.
# TE's support check is is_nvfp4_available(return_reason=True).
@register
class TENVFP4(TERecipe):
    name = "fp4-te-nvfp4"
    summary = ("TransformerEngine NVFP4BlockScaling (E2M1 values, an E4M3 scale per 16 and an "
               "FP32 scale per tensor; needs Blackwell SM100+ and TransformerEngine >= 2.8)")
    te_class = "NVFP4BlockScaling"
    support_kind = "nvfp4"
    gemm_dtype = "fp4"
    min_capability = (10, 0)
    scaling = ("NVFP4 2-level block: one E4M3 scale per 16 consecutive values, one FP32 scale "
               "per tensor (TE defaults: random Hadamard transform, stochastic rounding)")

    def formats(self) -> dict[str, str]:
        return {"forward": "e2m1", "backward": "e2m1", "scales": "e4m3 per 16 + fp32 per tensor"}

    def weight_cache(self, fp8_modules: list[nn.Module]) -> tuple[int | None, str]:
        elems = sum(math.prod(linear_dims(m)) for m in fp8_modules)
        return elems + 2 * (elems // 16), (
            "estimate: row-wise and column-wise NVFP4 copies of each weight (0.5 byte/value "
            "each) plus 1-byte E4M3 scales per 16 values, held from forward to backward")
