"""fp8-emulated: FP8 numerics on any device (CPU included); numerics only, never a speed claim.

`implementation: native` (default) runs mpbench's quantize-dequantize linear
(fp8_emulation.py); `implementation: torchao` runs torchao's Float8Linear with emulate=True
(tensorwise). Both keep weights, LM head and embeddings exactly as the BF16 recipe has them.
`scaling: delayed` (native only) scales as TransformerEngine's DelayedScaling does, from an
amax history of `amax_history_len` steps.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from mpbench.precision import ao_backend, convert
from mpbench.precision.base import RecipeOptions, register
from mpbench.precision.fp8_base import Fp8Options, Fp8Recipe, linear_dims
from mpbench.precision.fp8_delayed import DelayedScaling
from mpbench.precision.fp8_emulation import EmulatedFp8Linear


class EmulatedOptions(Fp8Options):
    implementation: Literal["native", "torchao"] = Field(
        "native", description="native: mpbench's quantize-dequantize linear; torchao: "
        "Float8Linear(emulate=True), tensorwise")
    scaling: Literal["current", "delayed"] = Field(
        "current", description="native: current (scale from the tensor's own amax) or delayed "
        "(TransformerEngine DelayedScaling: from the amax history of earlier steps)")
    amax_history_len: int = Field(16, ge=1, le=1024, description="delayed scaling: steps of "
                                  "amax history the scale is taken from (their maximum)")


def emulated_linear(linear: nn.Linear, history_len: int | None = None) -> nn.Module:
    """The emulated FP8 twin of `linear`, holding the very same parameters; `history_len`
    turns on delayed scaling with that amax history."""
    delayed = DelayedScaling(history_len) if history_len is not None else None
    twin = EmulatedFp8Linear(linear.in_features, linear.out_features,
                             bias=linear.bias is not None, device="meta", delayed=delayed)
    return convert.share_parameters(twin, linear)


@register
class Fp8Emulated(Fp8Recipe):
    name = "fp8-emulated"
    summary = ("FP8 numerics emulated with torch float8 dtypes (E4M3 forward, E5M2 gradients, "
               "per-tensor current scaling, FP32 accumulation); numerics only, runs on a CPU")
    numerics_only = True
    backend = "emulated"
    scaling = "current per-tensor: scale = fp8_max / amax of the tensor being cast"
    Options: ClassVar[type[RecipeOptions]] = EmulatedOptions
    options: EmulatedOptions

    def __init__(self, options: RecipeOptions | None = None) -> None:
        super().__init__(options)
        self._ao_config: Any = None

    @property
    def native(self) -> bool:
        return self.options.implementation == "native"

    @property
    def delayed(self) -> bool:
        return self.native and self.options.scaling == "delayed"

    def check(self, device: torch.device) -> str | None:
        if self.options.scaling == "delayed" and not self.native:
            return "fp8-emulated: scaling 'delayed' needs implementation 'native'"
        return None if self.native else ao_backend.unavailable("tensorwise")

    def amax_history_len(self) -> int | None:
        return self.options.amax_history_len if self.delayed else None

    def convert(self, model: nn.Module, names: list[str], device: torch.device) -> nn.Module:
        if self.native:
            history = self.amax_history_len()
            return convert.swap(model, names, lambda lin: emulated_linear(lin, history))
        self._ao_config = ao_backend.make_config("tensorwise", emulate=True)
        return ao_backend.convert_named(model, self._ao_config, names)

    def is_fp8_module(self, module: nn.Module) -> bool:
        if isinstance(module, EmulatedFp8Linear):
            return True
        cls = None if self.native else ao_backend.float8_linear_type()
        return cls is not None and isinstance(module, cls)

    def weight_cache(self, fp8_modules: list[nn.Module]) -> tuple[int | None, str]:
        if not self.native:
            return 0, "torchao emulation: casts in backward again, keeps no FP8 weight copy"
        elems = sum(math.prod(linear_dims(m)) for m in fp8_modules)
        return elems, ("the E4M3 weight copy (1 byte/value) the emulation saves from forward to "
                       "backward, as TE does; the emulation's own fp32 temporaries not counted")

    def telemetry(self, named: list[tuple[str, nn.Module]]) -> dict[str, Any]:
        layers = {name: module.telemetry() for name, module in named
                  if isinstance(module, EmulatedFp8Linear) and module.fp8_stats}
        if not layers:
            return {"exposed": False}
        return {"exposed": True, "source": "emulation, last step (amax per operand, "
                "scale = fp8_max / amax)", "layers": layers}

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["fp8"]["implementation"] = self.options.implementation
        if self.delayed:
            out["fp8"]["scaling"] = (f"delayed per-tensor: scale = fp8_max / max amax of the last "
                                     f"{self.options.amax_history_len} steps (1 before any)")
        out["fp8"]["note"] = ("emulated: FP8 rounding and range without FP8 tensor cores; its "
                              "speed and memory say nothing about real FP8")
        return out
