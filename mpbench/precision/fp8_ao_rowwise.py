"""fp8-ao-rowwise: torchao Float8Linear, dynamic per-row (axiswise) scaling."""

from __future__ import annotations

from mpbench.precision.base import register
from mpbench.precision.fp8_ao_base import AORecipe


@register
class AORowwise(AORecipe):
    name = "fp8-ao-rowwise"
    summary = ("torchao float8 training, 'rowwise' recipe (E4M3 everywhere, one power-of-2 scale "
               "per row), BF16 autocast elsewhere; compile with train.compile")
    ao_recipe = "rowwise"
    scaling = "dynamic axiswise (amax per row of the current tensor), power-of-2 scales"
