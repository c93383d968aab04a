"""Results of the memory profilers: "memory" (the breakdown of the peak) and "max_batch"."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from mpbench.results.payloads.base import ProfileResult


class MemoryResult(ProfileResult):
    """Profiler "memory": the peak split into named parts (bytes)."""

    name = "memory"
    PARTS: ClassVar[tuple[str, ...]] = ("params_bytes", "grads_bytes", "optimizer_bytes",
                                        "activations_bytes", "fp8_cache_bytes", "other_bytes")
    """The parts the report's breakdown shows, in its column order."""

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
    def has_parts(self) -> bool:
        """Whether any part was measured (a failed profiler stores none)."""
        return any(getattr(self, k) is not None for k in self.PARTS)

    @property
    def model_state_bytes(self) -> int | None:
        """Parameters + gradients + optimizer state (what Adam's 16 bytes/param counts)."""
        parts = (self.params_bytes, self.grads_bytes, self.optimizer_bytes)
        return None if any(p is None for p in parts) else sum(p for p in parts if p is not None)


class MaxBatchResult(ProfileResult):
    """Profiler "max_batch": the largest batch that fits, and what stopped the search."""

    name = "max_batch"

    max_batch_size: int | None = None
    first_failing_batch: int | None = None
    limit: str | None = None
    tried: list[tuple[int, bool]] = Field(default_factory=list)
    peak_bytes: dict[str, int | None] = Field(default_factory=dict)
    seq_len: int | None = None
    granularity: int | None = None
    memory_budget_bytes: int | None = None
