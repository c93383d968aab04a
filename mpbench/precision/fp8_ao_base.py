"""The part both torchao recipes share: availability, the Float8Linear swap and the record."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from mpbench.precision import ao_backend
from mpbench.precision.base import RecipeOptions, cuda_capability_at_least
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
