"""Suite `extensions:` sections, each validated by the schema of the component that reads it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ConvergenceOptions(BaseModel):
    """`extensions.convergence` in a suite file."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    baseline: str = "fp32"
    tolerance: float | None = Field(None, gt=0, description="equivalence margin in loss units "
                                    "(nats); default: margin_k FP32 seed-to-seed stdevs")
    margin_k: float = Field(1.0, gt=0, description="margin in FP32 seed-to-seed stdevs")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="TOST level (one-sided)")
    band_k: float = Field(2.0, gt=0, description="band half-width in FP32 stdevs per step")
    paired: bool = Field(True, description="pair each recipe's seed with FP32's same seed")
    target_slack: float | None = Field(None, ge=0, description="time to target: reach FP32's "
                                       "final eval loss + this (default: the equivalence margin)")


EXTENSIONS: dict[str, type[BaseModel]] = {"convergence": ConvergenceOptions}
"""Section name -> its schema (mpbench.analysis.convergence reads `convergence`)."""
