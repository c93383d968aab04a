"""The torch-native modes: strict FP32, TF32, FP16 with and without loss scaling, BF16."""

from __future__ import annotations

import contextlib
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


class ScalerOptions(RecipeOptions):
    init_scale: float = Field(2.0**16, gt=0, description="GradScaler initial loss scale")
    growth_interval: int = Field(2000, gt=0, description="steps without overflow before growth")


class _Autocast(Recipe):
    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        return torch.autocast(device_type=device.type, dtype=self.compute_dtype)


@register
class FP16(_Autocast):
    name = "fp16"
    family = "fp16"
    role = "mixed"
    summary = "autocast FP16 with dynamic loss scaling (GradScaler), FP32 master weights"
    compute_dtype = torch.float16
    Options = ScalerOptions
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

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def prepare(self, model: nn.Module, device: torch.device) -> nn.Module:
        return model.to(device=device, dtype=torch.bfloat16)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "optimizer_state_dtype": "bfloat16"}
