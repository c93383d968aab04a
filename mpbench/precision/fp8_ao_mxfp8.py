"""fp8-ao-mxfp8: torchao MXFP8 training (OCP microscaling E4M3, Blackwell SM100, torchao >= 0.14)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mpbench.precision import ao_backend, ao_mx_backend
from mpbench.precision import convert as converter
from mpbench.precision.base import cuda_capability_at_least, register
from mpbench.precision.fp8_ao_base import AORecipe
from mpbench.precision.fp8_base import Fp8Recipe


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
