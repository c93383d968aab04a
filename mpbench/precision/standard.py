"""The torch-native modes: strict FP32, TF32, FP16 with and without loss scaling, BF16."""

from __future__ import annotations

import contextlib
import fnmatch
import functools
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import nn

from mpbench.precision.base import Recipe, RecipeOptions, cuda_capability_at_least, register
from mpbench.results.recipe_card import RecipeRole


@register
class FP32(Recipe):
    name = "fp32"
    summary = "strict FP32: TF32 off, matmul precision 'highest' (the baseline)"
    role = "baseline"


@register
class TF32(Recipe):
    name = "tf32"
    family = "tf32"
    summary = "FP32 storage, TF32 tensor-core matmuls (matmul precision 'high')"
    matmul_precision = "high"

    def check(self, device: torch.device) -> str | None:
        # On a CPU 'high' may let oneDNN use bf16 internally: that is not TF32, so skip.
        return cuda_capability_at_least(device, 8, 0, "TF32 (an NVIDIA tensor-core mode)")


class AutocastOptions(RecipeOptions):
    keep_fp32: list[str] = Field(
        default_factory=list, description="globs of module names (as model.named_modules() "
        "spells them) that run outside autocast, in FP32: the filter `mpbench advise` proposes")


class ScalerOptions(AutocastOptions):
    init_scale: float = Field(2.0**16, gt=0, description="GradScaler initial loss scale")
    growth_interval: int = Field(2000, gt=0, description="steps without overflow before growth")


def fp32_forward(forward: Callable[..., Any], device_type: str) -> Callable[..., Any]:
    """`forward` with autocast off and floating-point tensor arguments in FP32."""

    @functools.wraps(forward)
    def run(*args: Any, **kwargs: Any) -> Any:
        with torch.autocast(device_type=device_type, enabled=False):
            args = tuple(a.float() if isinstance(a, torch.Tensor) and a.is_floating_point()
                         else a for a in args)
            return forward(*args, **kwargs)

    return run


class _Autocast(Recipe):
    Options: ClassVar[type[RecipeOptions]] = AutocastOptions
    options: AutocastOptions

    def __init__(self, options: RecipeOptions | None = None) -> None:
        super().__init__(options)
        self._kept_fp32: list[str] = []

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        return torch.autocast(device_type=device.type, dtype=self.compute_dtype)

    def prepare(self, model: nn.Module, device: torch.device) -> nn.Module:
        """Move the model; the modules `keep_fp32` names run their forward outside autocast
        (their backward follows the forward's dtypes), a glob matching nothing is an error."""
        model = model.to(device)
        globs = self.options.keep_fp32
        if not globs:
            return model
        named = list(model.named_modules())
        for glob in globs:
            if not any(fnmatch.fnmatchcase(name, glob) for name, _ in named):
                raise ValueError(f"keep_fp32: '{glob}' matches no module of the model (names "
                                 f"like {', '.join(n for n, _ in named[1:4])})")
        for name, module in named:
            if name and any(fnmatch.fnmatchcase(name, g) for g in globs):
                module.forward = fp32_forward(module.forward, device.type)
                self._kept_fp32.append(name)
        return model

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        if getattr(self.options, "keep_fp32", None):  # bf16-pure has no such option
            out["kept_fp32"] = list(self._kept_fp32)
        return out


@register
class FP16(_Autocast):
    name = "fp16"
    family = "fp16"
    role = "mixed"
    summary = "autocast FP16 with dynamic loss scaling (GradScaler), FP32 master weights"
    compute_dtype = torch.float16
    Options: ClassVar[type[RecipeOptions]] = ScalerOptions
    options: ScalerOptions

    def make_scaler(self, device: torch.device) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(
            device.type,
            init_scale=self.options.init_scale,
            growth_interval=self.options.growth_interval,
        )


@register
class FP16NoScale(_Autocast):
    name = "fp16-noscale"
    family = "fp16"
    role = "context"
    role_note = "FP16 without loss scaling (broken on purpose to show underflow)"
    summary = "autocast FP16 without loss scaling: small gradients underflow (shown on purpose)"
    compute_dtype = torch.float16


@register
class BF16(_Autocast):
    name = "bf16"
    family = "bf16"
    role: ClassVar[RecipeRole] = "mixed"
    summary = "autocast BF16, FP32 master weights, no loss scaling"
    compute_dtype = torch.bfloat16

    def check(self, device: torch.device) -> str | None:
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            return f"{torch.cuda.get_device_name(device)} has no BF16 support (pre-Ampere)"
        return None


@register
class BF16Pure(BF16):
    name = "bf16-pure"
    role = "context"
    role_note = "no FP32 master weights"
    summary = (
        "BF16 parameters, gradients and AdamW state (no FP32 master copy): "
        "half the model-state memory, at a risk to quality"
    )
    Options: ClassVar[type[RecipeOptions]] = RecipeOptions  # no autocast: nothing to keep out

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def prepare(self, model: nn.Module, device: torch.device) -> nn.Module:
        return model.to(device=device, dtype=torch.bfloat16)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "optimizer_state_dtype": "bfloat16"}
