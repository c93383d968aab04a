"""fp8-te-block: TransformerEngine Float8BlockScaling (DeepSeek-V3 style blocks; SM90+)."""

from __future__ import annotations

from mpbench.precision.base import register
from mpbench.precision.fp8_te_base import TERecipe


@register
class TEBlock(TERecipe):
    name = "fp8-te-block"
    summary = ("TransformerEngine FP8, Float8BlockScaling (E4M3, power-of-2 scales per 1x128 "
               "activation tile and 128x128 weight block; Hopper+, TE >= 2.3, CUDA >= 12.9)")
    te_class = "Float8BlockScaling"
    support_kind = "block"
    min_capability = (9, 0)
    scaling = ("block: one scale (power of 2 by TE default) per 1x128 tile of activations and "
               "gradients, per 128x128 block of weights")
