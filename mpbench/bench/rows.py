"""BenchRow schemas of the bench records: one row per measured case, validated on write and on read."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

RowStatus = Literal["ok", "skipped", "unsupported", "oom", "failed"]


class BenchRow(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: RowStatus = "ok"
    reason: str | None = None


class GemmRow(BenchRow):
    dtype: str
    shape: str
    """'square' or '<model>.<layer>' (with .dgrad/.wgrad for the backward GEMMs)."""
    m: int
    n: int
    k: int
    flops: int
    """2*m*n*k multiply-adds counted as two FLOPs."""
    time_ms: float | None = None
    """Median time of one GEMM."""
    time_min_ms: float | None = None
    spread: float | None = None
    """(p90 - p10) / median of the repetitions."""
    reps: int = 0
    tflops: float | None = None
    rel_error: float | None = None
    """||C - C_fp32|| / ||C_fp32|| against a strict fp32 product of the same inputs."""
    numerics_only: bool = False
    """True where the speed means nothing for the hardware (FP8 on a CPU)."""
    variant: str | None = None


class AlignmentRow(GemmRow):
    base: int
    offset: int
    multiple_of: int
    """Largest power of two (up to 16) that divides both K and N."""
    relative_to_aligned: float | None = None
    """TFLOP/s over the aligned case's TFLOP/s for the same dtype (1.0 = no penalty)."""


class BandwidthRow(BenchRow):
    dtype: str
    op: str
    elements: int
    bytes: int
    """Bytes the op must move at least: inputs read plus outputs written."""
    bytes_per_element: int
    time_ms: float | None = None
    spread: float | None = None
    reps: int = 0
    gbps: float | None = None
    elements_per_s: float | None = None
    vs_fp32: float | None = None
    """elements/s over fp32's elements/s for the same op."""


class PredictionRow(BenchRow):
    dtype: str
    baseline: str
    gemm_speedup: float | None = None
    gemm_speedup_basis: str = ""
    other_speedup: float = 1.0
    """Speedup assumed for the non-GEMM rest of the step (measured bandwidth ratio, or 1)."""
    gemm_share: float | None = None
    share_source: str = ""
    predicted_amdahl: float | None = None
    """1 / ((1 - s) + s / k): only the GEMMs get faster."""
    predicted_roofline: float | None = None
    """1 / ((1 - s) / b + s / k): the rest moves fewer bytes too."""
    measured_speedup: float | None = None
    measured_source: str | None = None


ROW_MODELS: dict[str, type[BenchRow]] = {
    "gemm": GemmRow, "alignment": AlignmentRow, "bandwidth": BandwidthRow, "prediction": PredictionRow,
}
