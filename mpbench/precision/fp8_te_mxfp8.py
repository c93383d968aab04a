"""fp8-te-mxfp8: TransformerEngine MXFP8BlockScaling (OCP microscaling; Blackwell, SM100+)."""

from __future__ import annotations

from mpbench.precision.base import register
from mpbench.precision.fp8_te_base import TERecipe


@register
class TEMXFP8(TERecipe):
    name = "fp8-te-mxfp8"
    summary = ("TransformerEngine MXFP8BlockScaling (E4M3 values, one E8M0 power-of-2 scale per "
               "32 values; Blackwell SM100+ only, not H100/H200)")
    te_class = "MXFP8BlockScaling"
    support_kind = "mxfp8"
    min_capability = (10, 0)
    scaling = "MXFP8 block: one E8M0 (power-of-2) scale per 32 consecutive values"
