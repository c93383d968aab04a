"""fp8-te-delayed: TransformerEngine DelayedScaling (scales from a history of past amaxes)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field
from torch import nn

from mpbench.config.schema import TrainConfig
from mpbench.precision import te_backend
from mpbench.precision.base import RecipeOptions, register
from mpbench.precision.fp8_te_base import FormatOptions, TERecipe


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
