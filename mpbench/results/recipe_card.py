"""The recipe as a record describes it (Recipe.describe(), stored as RunRecord.recipe), read
through a typed model. Recipes add their own keys (extra="allow"); the ones every reader
needs are fields here, with the defaults of records that lack them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mpbench.results.schema import RunRecord

RecipeRole = Literal["baseline", "mixed", "context", "other"]
"""What a recipe is for the comparisons, said by the recipe itself (Recipe.role):
baseline: strict FP32, what every precision is compared with;
mixed: mixed precision done right (autocast over FP32 master weights, loss scaling where
the format needs it), the recipes the speed, memory and quality claims are about;
context: shown next to them on purpose but never counted (Recipe.role_note says why);
other: every further mode (TF32, FP8, FP4), judged by the claims that name its family."""


class _Card(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class Fp8Card(_Card):
    """How an FP8 recipe ran (precision/fp8_base.py describe)."""

    backend: str | None = None
    formats: Any = None
    scaling: str | None = None
    amax_history_len: int | None = None
    layers_in_fp8: list[str] | None = None
    """None when the recipe does not say which layers it converted."""
    layers_kept_bf16: list[str] | None = None
    kept_bf16_reasons: dict[str, str] = Field(default_factory=dict)
    fp8_weight_fraction: float | None = None
    weight_cache_bytes: int | None = None
    weight_cache_note: str | None = None


class RecipeCard(_Card):
    name: str = ""
    family: str | None = None
    """fp32, tf32, fp16, bf16, fp8, fp4 (None in records that predate it: the precision)."""
    summary: str = ""
    compute_dtype: str | None = None
    matmul_precision: str = "highest"
    numerics_only: bool = False
    """Emulated modes: their speed never counts towards a speed claim."""
    gemm_dtype: str | None = None
    role: RecipeRole = "other"
    role_note: str = ""
    """Why a `context` recipe is not counted (FP16 without loss scaling, ...)."""
    options: dict[str, Any] = Field(default_factory=dict)
    fp8: Fp8Card | None = None


def recipe_card(r: RunRecord) -> RecipeCard:
    return RecipeCard.model_validate(r.recipe)
