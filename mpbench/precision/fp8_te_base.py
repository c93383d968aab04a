"""The part every TransformerEngine recipe shares: availability, te.Linear layers, the
context managers (BF16 autocast outside, TE's FP8 autocast for the te.Linear GEMMs)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from mpbench.config.schema import TrainConfig
from mpbench.precision import convert as converter
from mpbench.precision import te_backend
from mpbench.precision.base import RecipeOptions, cuda_capability_at_least
from mpbench.precision.fp8_base import Fp8Options, Fp8Recipe


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
