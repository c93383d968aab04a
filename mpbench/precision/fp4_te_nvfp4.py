"""fp4-te-nvfp4: TransformerEngine NVFP4BlockScaling (FP4 E2M1 GEMMs; Blackwell SM100+, TE >= 2.8).

Read upstream in transformer_engine/common/recipe/__init__.py: NVFP4BlockScaling is a
2-level block scaling, one E4M3 scale per 16 consecutive values and one FP32 scale per
tensor, `fp4_format` E2M1 and `fp8_format` E4M3 (both asserted in __post_init__), with
random Hadamard transforms, stochastic rounding and 2D weight quantization on by default.
TE's support check is is_nvfp4_available(return_reason=True).
"""

from __future__ import annotations

import math

from torch import nn

from mpbench.precision.base import register
from mpbench.precision.fp8_base import linear_dims
from mpbench.precision.fp8_te_base import TERecipe


@register
class TENVFP4(TERecipe):
    name = "fp4-te-nvfp4"
    summary = ("TransformerEngine NVFP4BlockScaling (E2M1 values, an E4M3 scale per 16 and an "
               "FP32 scale per tensor; needs Blackwell SM100+ and TransformerEngine >= 2.8)")
    te_class = "NVFP4BlockScaling"
    support_kind = "nvfp4"
    gemm_dtype = "fp4"
    min_capability = (10, 0)
    scaling = ("NVFP4 2-level block: one E4M3 scale per 16 consecutive values, one FP32 scale "
               "per tensor (TE defaults: random Hadamard transform, stochastic rounding)")

    def formats(self) -> dict[str, str]:
        return {"forward": "e2m1", "backward": "e2m1", "scales": "e4m3 per 16 + fp32 per tensor"}

    def weight_cache(self, fp8_modules: list[nn.Module]) -> tuple[int | None, str]:
        elems = sum(math.prod(linear_dims(m)) for m in fp8_modules)
        return elems + 2 * (elems // 16), (
            "estimate: row-wise and column-wise NVFP4 copies of each weight (0.5 byte/value "
            "each) plus 1-byte E4M3 scales per 16 values, held from forward to backward")
