"""fp8-te-current: TransformerEngine Float8CurrentScaling (per-tensor scale from this step)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from mpbench.precision.base import RecipeOptions, register
from mpbench.precision.fp8_te_base import TEOptions, TERecipe


class CurrentOptions(TEOptions):
    fp8_format: Literal["HYBRID", "E4M3"] = Field(
        "HYBRID", description="HYBRID: E4M3 forward, E5M2 gradients; E4M3: E4M3 everywhere")


@register
class TECurrent(TERecipe):
    name = "fp8-te-current"
    summary = ("TransformerEngine FP8, Float8CurrentScaling (per-tensor scale from the current "
               "amax; needs TE >= 2.2), BF16 autocast elsewhere")
    te_class = "Float8CurrentScaling"
    scaling = "current per-tensor: scale = fp8_max / amax of the tensor being cast"
    Options: ClassVar[type[RecipeOptions]] = CurrentOptions
    options: CurrentOptions

    def fp8_format(self) -> str:
        return self.options.fp8_format
