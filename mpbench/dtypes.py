"""The one dtype vocabulary: the peak table, the recipes and the micro-benchmarks name a GEMM's
dtype by these keys (fp32 strict, tf32, fp16, bf16, fp8, fp4).

Torch-free, at the bottom of the layers: mpbench.mfu keys its datasheet peaks by them,
every recipe declares its key (Recipe.gemm_key), the bench's rows and ceilings carry them, and
mpbench.mfu looks up spec peak and measured ceiling by them.
"""

from __future__ import annotations

from typing import Literal

DtypeKey = Literal["fp32", "tf32", "fp16", "bf16", "fp8", "fp4"]
DTYPE_KEYS: tuple[DtypeKey, ...] = ("fp32", "tf32", "fp16", "bf16", "fp8", "fp4")

# Names a caller may use for a dtype: recipe families, torch names, the datasheets' names.
_ALIASES: dict[str, DtypeKey] = {
    "fp32": "fp32", "float32": "fp32", "float": "fp32",
    "tf32": "tf32",
    "fp16": "fp16", "float16": "fp16", "half": "fp16",
    "bf16": "bf16", "bfloat16": "bf16",
    "fp8": "fp8", "float8": "fp8", "float8_e4m3fn": "fp8", "e4m3": "fp8", "mxfp8": "fp8",
    "fp4": "fp4", "float4": "fp4", "float4_e2m1fn_x2": "fp4", "e2m1": "fp4", "nvfp4": "fp4",
}


def dtype_key(dtype: object) -> DtypeKey:
    """Normalise 'bfloat16', torch.bfloat16, 'bf16', 'float8', ... to one key (ValueError if
    unknown)."""
    name = str(dtype).removeprefix("torch.").lower()
    if name not in _ALIASES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPE_KEYS)}")
    return _ALIASES[name]


def recipe_gemm_key(family: str, compute_dtype: str, matmul_precision: str = "highest",
                    declared: str | None = None) -> DtypeKey:
    """The dtype a recipe's GEMMs run in, from what a record's `recipe` holds.

    A recipe's declared key wins (FP4 recipes are of the fp8 family); then the family (fp8
    recipes compute in bf16 around FP8 GEMMs); then the compute dtype, which is tf32 where an
    fp32 recipe lets matmuls use TF32 (matmul_precision 'high' or 'medium')."""
    if declared:
        return dtype_key(declared)
    if family in ("fp8", "fp4", "tf32"):
        return dtype_key(family)
    try:
        key = dtype_key(compute_dtype)
    except ValueError:
        key = dtype_key(family)
    return "tf32" if key == "fp32" and matmul_precision in ("high", "medium") else key
