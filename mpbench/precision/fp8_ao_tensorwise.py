"""fp8-ao-tensorwise: torchao Float8Linear, dynamic per-tensor scaling."""

from __future__ import annotations

from mpbench.precision.base import register
from mpbench.precision.fp8_ao_base import AORecipe


@register
class AOTensorwise(AORecipe):
    name = "fp8-ao-tensorwise"
    summary = ("torchao float8 training, 'tensorwise' recipe (E4M3 forward, E5M2 gradients, one "
               "dynamic scale per tensor), BF16 autocast elsewhere; compile with train.compile")
    ao_recipe = "tensorwise"
    scaling = "dynamic tensorwise (amax of the current tensor)"
