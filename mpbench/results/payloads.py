"""Typed profiler results: what a profiler stores under `RunRecord.profiler_results[<name>]`.

Each profiler binds its model next to its Options (`Result = MemoryResult` in
profile/memory_breakdown.py) and builds its result through it; the analysis reads these
fields (analysis/access.py) instead of dict paths, so a renamed field breaks the type checker
and the tests (extra fields are refused). The models live here, below the profilers, so that
reading a record never imports torch. Records keep their JSON shape (a profiler's dict, or
{"skipped": reason}); every field a result may lack has a default, and a change of shape is
a schema version step in results/upgrade.py.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ProfileResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    error: str | None = None
    """Set when the profiler failed (the run it observed goes on)."""


class MemoryResult(ProfileResult):
    """Profiler "memory": the peak split into named parts (bytes)."""

    params_bytes: int | None = None
    buffers_bytes: int | None = None
    grads_bytes: int | None = None
    optimizer_bytes: int | None = None
    activations_bytes: int | None = None
    weight_copies_bytes: int | None = None
    fp8_cache_bytes: int | None = None
    other_bytes: int | None = None
    """The measured peak less the named parts resident at the peak."""
    n_params: int | None = None
    model_state_bytes_per_param: float | None = None
    sum_bytes: int | None = None
    resident_at_peak_bytes: int | None = None
    measured_peak_bytes: int | None = None
    measure: str | None = None
    phase_peaks: dict[str, int | None] = Field(default_factory=dict)
    tolerance: float | None = None
    peak_reserved_bytes: int | None = None
    alloc_retries: int | None = None
    num_ooms: int | None = None
    matches: bool | None = None
    note: str | None = None

    @property
    def model_state_bytes(self) -> int | None:
        """Parameters + gradients + optimizer state (what Adam's 16 bytes/param counts)."""
        parts = (self.params_bytes, self.grads_bytes, self.optimizer_bytes)
        return None if any(p is None for p in parts) else sum(p for p in parts if p is not None)


class MaxBatchResult(ProfileResult):
    """Profiler "max_batch": the largest batch that fits, and what stopped the search."""

    max_batch_size: int | None = None
    first_failing_batch: int | None = None
    limit: str | None = None
    tried: list[tuple[int, bool]] = Field(default_factory=list)
    peak_bytes: dict[str, int | None] = Field(default_factory=dict)
    seq_len: int | None = None
    granularity: int | None = None
    memory_budget_bytes: int | None = None


class Underflow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fraction: float | None = None
    """Share of activation-gradient values at or below FP16's smallest subnormal."""
    fp32_reference_fraction: float | None = None
    zero_fraction: float | None = None
    fp32_reference_zero_fraction: float | None = None
    lost_fraction: float | None = None
    """Non-zero in the FP32 reference but zero in the run."""
    threshold: float | None = None
    reference: str | None = None
    samples: list[dict[str, Any]] = Field(default_factory=list)
    """Each probe's fractions and per-layer shares ({"step", "fraction", ..., "per_layer"})."""


class Overflow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: float | None = None
    act_amax: float | None = None
    act_amax_layer: str | None = None
    grad_amax: float | None = None
    grad_amax_layer: str | None = None
    grad_amax_unscaled: float | None = None
    amax: list[list[float | None]] = Field(default_factory=list)
    """(step, activation amax, gradient amax) per probe."""
    events: list[dict[str, Any]] = Field(default_factory=list)
    events_dropped: int = 0


class NumericsResult(ProfileResult):
    """Profiler "numerics": loss scale, skipped steps, gradient norm, underflow, overflow."""

    every: int | None = None
    loss_scale: list[tuple[int, float]] = Field(default_factory=list)
    """(step, scale) at each change."""
    skipped_steps: list[int] | int = Field(default_factory=list)
    """The overflowed (skipped) optimizer steps (a count in early records)."""
    grad_norm: list[tuple[int, float | None]] = Field(default_factory=list)
    """(step, global norm before clipping); None where it was not finite."""
    underflow: Underflow = Field(default_factory=Underflow)
    overflow: Overflow = Field(default_factory=Overflow)
    probes: int = 0
    probe_error: str | None = None
    overhead_s: float | None = None
    overhead_fraction: float | None = None
