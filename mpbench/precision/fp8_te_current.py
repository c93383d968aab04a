"""fp8-te-current: TransformerEngine Float8CurrentScaling (per-tensor scale from this step)."""

from __future__ import annotations

from typing import ClassVar

from mpbench.precision.base import RecipeOptions, register
from mpbench.precision.fp8_te_base import FormatOptions, TERecipe


class CurrentOptions(FormatOptions):
    """The format choice only: the scale comes from the tensor being cast."""


@register
class TECurrent(TERecipe):
    name = "fp8-te-current"
    summary = ("TransformerEngine FP8, Float8CurrentScaling (per-tensor scale from the current "
               "amax; needs TE >= 2.2), BF16 autocast elsewhere")
    te_class = "Float8CurrentScaling"
    scaling = "current per-tensor: scale = fp8_max / amax of the tensor being cast"
    Options: ClassVar[type[RecipeOptions]] = CurrentOptions
    options: CurrentOptions
