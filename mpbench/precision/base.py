"""The precision recipe interface and its registry.

A recipe is a subclass of `Recipe` decorated with `@register` (an FP8 one is a preset line of
its backend's class, fp8_base.preset). The training loop only talks to this interface, so
adding FP8 or another mode edits nothing else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
from torch import nn

from mpbench.config import Strict
from mpbench.config.model_sizes import ModelConfig
from mpbench.config.schema import TrainConfig
from mpbench.dtypes import DtypeKey, recipe_gemm_key
from mpbench.registry import registrar
from mpbench.results.recipe_card import RecipeRole


class RecipeOptions(Strict):
    """Options a suite may set for a recipe; subclasses add fields (unknown keys are errors)."""

    def recorded(self) -> dict[str, Any]:
        """The options as the run's record holds them."""
        return self.model_dump()


class Recipe:
    name: ClassVar[str]
    summary: ClassVar[str]
    Options: ClassVar[type[RecipeOptions]] = RecipeOptions
    compute_dtype: ClassVar[torch.dtype] = torch.float32
    """Dtype the matmuls run in; used for the peak-FLOP/s lookup and the claims."""
    family: ClassVar[str] = "fp32"
    """Claim grouping: fp32, tf32, fp16, bf16 or fp8."""
    matmul_precision: ClassVar[str] = "highest"
    """torch.set_float32_matmul_precision for the run: 'highest' keeps fp32 strict (TF32 off)."""
    numerics_only: ClassVar[bool] = False
    """True for emulated modes: their speed never counts towards a speed claim."""
    gemm_dtype: ClassVar[str | None] = None
    """The GEMMs' dtype where family and compute dtype do not tell it (FP4 recipes)."""
    role: ClassVar[RecipeRole] = "other"
    """baseline, mixed (precision done right), context (shown, never counted) or other
    (results/recipe_card.RecipeRole); the claims and views read it from the record."""
    role_note: ClassVar[str] = ""
    """Why a context recipe is not counted."""

    def __init__(self, options: RecipeOptions | None = None) -> None:
        self.options = options if options is not None else self.Options()

    # -- availability -------------------------------------------------------------
    def check(self, device: torch.device) -> str | None:
        """None when the recipe can run on `device`, else the reason it cannot."""
        return None

    def check_shapes(self, model: ModelConfig | None, batch_size: int, seq_len: int) -> str | None:
        """A problem with the suite's shapes for this recipe (checked at load, exit 2), or None.

        `model` is None for Hugging Face and user models (their layer shapes are unknown here).

        The message names the dimension, its value and the nearest valid value.
        """
        return None

    def check_train(self, train: TrainConfig) -> str | None:
        """A train setting this recipe cannot honour (the run is skipped with it), or None."""
        return None

    def compile_refusal(self, train: TrainConfig) -> str | None:
        """Why this recipe runs eager although train.compile is on (said in its record)."""
        return None

    # -- building -------------------------------------------------------------------
    def prepare(self, model: nn.Module, device: torch.device) -> nn.Module:
        """Move (and, for pure low-precision modes, cast) the built model; FP8 recipes convert
        its linear layers here (every model is built plain, then converted)."""
        return model.to(device)

    # -- the step -------------------------------------------------------------------
    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def make_scaler(self, device: torch.device) -> torch.amp.GradScaler | None:
        return None

    def gemm_key(self) -> DtypeKey:
        """The dtype this recipe's GEMMs run in, in the one vocabulary (mpbench.dtypes): the key
        of its spec peak, its measured ceiling and its micro-benchmark rows."""
        return recipe_gemm_key(self.family, str(self.compute_dtype), self.matmul_precision,
                               self.gemm_dtype)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "summary": self.summary,
            "compute_dtype": str(self.compute_dtype).removeprefix("torch."),
            "matmul_precision": self.matmul_precision,
            "numerics_only": self.numerics_only,
            "gemm_dtype": self.gemm_key(),
            "role": self.role,
            "role_note": self.role_note,
            "options": self.options.recorded(),
        }

    @contextlib.contextmanager
    def activated(self) -> Iterator[None]:
        """Set the process-wide matmul mode for the run and restore it afterwards."""
        before = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision(self.matmul_precision)
        try:
            yield
        finally:
            torch.set_float32_matmul_precision(before)


RECIPES: dict[str, type[Recipe]] = {}


register = registrar(RECIPES, "recipe")
"""Class decorator: add the recipe to RECIPES under its name."""


def needs_cuda(device: torch.device, what: str) -> str | None:
    if device.type != "cuda":
        return f"{what} needs a CUDA GPU; this run is on {device.type}"
    return None


def cuda_capability_at_least(device: torch.device, major: int, minor: int, what: str) -> str | None:
    if (reason := needs_cuda(device, what)) is not None:
        return reason
    cap = torch.cuda.get_device_capability(device)
    if cap < (major, minor):
        name = torch.cuda.get_device_name(device)
        return f"{what} needs compute capability >= {major}.{minor}; {name} has {cap[0]}.{cap[1]}"
    return None
