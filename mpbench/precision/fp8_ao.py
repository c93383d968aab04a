"""torchao recipes: one module per backend.

The shared part: availability, the Float8Linear swap and the record; then one small class
per torchao recipe (tensorwise, rowwise, MXFP8): a new torchao recipe is a class here.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from mpbench.precision import ao_backend, ao_mx_backend
from mpbench.precision import convert as converter
from mpbench.precision.base import RecipeOptions, cuda_capability_at_least, register
from mpbench.precision.fp8_base import Fp8Recipe

NO_CACHE_NOTE = ("torchao saves the high-precision input and weight for backward and casts them "
                 "to FP8 again there: no FP8 weight copy outlives a GEMM")


class AORecipe(Fp8Recipe):
    backend = "torchao"
    ao_recipe: ClassVar[str]
    """Float8LinearConfig.from_recipe_name argument: tensorwise or rowwise."""
    emulate: ClassVar[bool] = False

    def __init__(self, options: RecipeOptions | None = None) -> None:
        super().__init__(options)
        self._config: Any = None

    def check(self, device: torch.device) -> str | None:
        what = f"{self.name} (torchao float8 {self.ao_recipe})"
        reason = cuda_capability_at_least(device, 8, 9, what)
        return reason if reason is not None else ao_backend.unavailable(self.ao_recipe)

    def convert(self, model: nn.Module, names: list[str], device: torch.device) -> nn.Module:
        self._config = ao_backend.make_config(self.ao_recipe, emulate=self.emulate)
        return ao_backend.convert_named(model, self._config, names)

    def is_fp8_module(self, module: nn.Module) -> bool:
        cls = ao_backend.float8_linear_type()
        return cls is not None and isinstance(module, cls)

    def formats(self) -> dict[str, str]:
        if self._config is None:
            return {"forward": "e4m3", "weight": "e4m3",
                    "backward": "e5m2" if self.ao_recipe == "tensorwise" else "e4m3"}
        return ao_backend.formats(self._config)

    def weight_cache(self, fp8_modules: list[nn.Module]) -> tuple[int | None, str]:
        return 0, NO_CACHE_NOTE

    def telemetry(self, named: list[tuple[str, nn.Module]]) -> dict[str, Any]:
        return {"exposed": False, "note": "torchao dynamic scaling derives every scale from the "
                "tensor being cast and stores none"}

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        if self._config is not None:
            out["fp8"]["scaling"] = ao_backend.granularity(self._config)
        out["fp8"]["torchao_version"] = ao_backend.version() if self._config is not None else None
        out["fp8"]["compile"] = "the training loop wraps the model in torch.compile when " \
            "train.compile is true (torchao's fast path); eager otherwise"
        return out


# -- fp8-ao-tensorwise: torchao Float8Linear, dynamic per-tensor scaling.
@register
class AOTensorwise(AORecipe):
    name = "fp8-ao-tensorwise"
    summary = ("torchao float8 training, 'tensorwise' recipe (E4M3 forward, E5M2 gradients, one "
               "dynamic scale per tensor), BF16 autocast elsewhere; compile with train.compile")
    ao_recipe = "tensorwise"
    scaling = "dynamic tensorwise (amax of the current tensor)"


# -- fp8-ao-rowwise: torchao Float8Linear, dynamic per-row (axiswise) scaling.
@register
class AORowwise(AORecipe):
    name = "fp8-ao-rowwise"
    summary = ("torchao float8 training, 'rowwise' recipe (E4M3 everywhere, one power-of-2 scale "
               "per row), BF16 autocast elsewhere; compile with train.compile")
    ao_recipe = "rowwise"
    scaling = "dynamic axiswise (amax per row of the current tensor), power-of-2 scales"


# -- fp8-ao-mxfp8: torchao MXFP8 training (OCP microscaling E4M3, Blackwell SM100, torchao >= 0.14).
@register
class AOMXFP8(AORecipe):
    name = "fp8-ao-mxfp8"
    summary = ("torchao MXFP8 training (E4M3 values, one E8M0 scale per 32, RCEIL rounding), "
               "BF16 autocast elsewhere; needs Blackwell SM100 and torchao >= 0.14")
    ao_recipe = "mxfp8"
    scaling = "MXFP8 block: one E8M0 (power-of-2) scale per 32 consecutive values"

    def check(self, device: torch.device) -> str | None:
        what = f"{self.name} (torchao MXFP8 training)"
        reason = cuda_capability_at_least(device, 10, 0, what)
        return reason if reason is not None else ao_mx_backend.make_config()[1]

    def convert(self, model: nn.Module, names: list[str], device: torch.device) -> nn.Module:
        config, reason = ao_mx_backend.make_config()
        if config is None:
            raise RuntimeError(reason)
        self._config = config
        chosen = set(names)  # exactly the FP8 filter's choice, as every FP8 recipe converts
        converter.linearize(model, names)
        return ao_mx_backend.convert(model, config, lambda mod, fqn: fqn in chosen)

    def is_fp8_module(self, module: nn.Module) -> bool:
        return ao_mx_backend.is_mx_module(module)

    def formats(self) -> dict[str, str]:
        return {"forward": "e4m3", "weight": "e4m3", "backward": "e4m3",
                "scales": "e8m0 per 32"}

    def describe(self) -> dict[str, Any]:
        out = Fp8Recipe.describe(self)  # not AORecipe's: an MX config has no float8 cast configs
        out["fp8"]["scaling"] = (f"{self.scaling} ({type(self._config).__name__})"
                                 if self._config is not None else self.scaling)
        out["fp8"]["torchao_version"] = ao_backend.version() if self._config is not None else None
        out["fp8"]["compile"] = "the training loop wraps the model in torch.compile when " \
            "train.compile is true; eager otherwise"
        return out
