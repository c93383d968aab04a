"""Result of the "numerics" profiler: loss scale, skipped steps, norms, underflow, overflow."""

from __future__ import annotations

from pydantic import Field

from mpbench.results.payloads.base import ProfileResult, Strict


class UnderflowSample(Strict):
    """One probe's underflow shares (profilers/grad_probe.py Underflow)."""

    step: int
    fraction: float | None = None
    fp32_reference_fraction: float | None = None
    zero_fraction: float | None = None
    fp32_reference_zero_fraction: float | None = None
    lost_fraction: float | None = None
    elements: int = 0
    by_layer: dict[str, float] = Field(default_factory=dict)
    """lost_fraction per layer (the reference's below-FP16_TINY share without a 16-bit run)."""


class OverflowEvent(Strict):
    """An inf/NaN or a value above FP16's maximum, where it first showed (one per kind and layer)."""

    step: int
    kind: str
    """nonfinite-loss, nonfinite-activation, nonfinite-gradient, above-fp16-max-*, skipped-step."""
    layer: str | None = None
    value: float | str | None = None
    """The amax seen; 'inf' or 'nan' as text."""
    fp32_scaled_amax: float | None = None
    """What the FP32 reference says the value would have been (x loss scale)."""


class Underflow(Strict):
    fraction: float | None = None
    """Share of activation-gradient values at or below FP16's smallest subnormal."""
    fp32_reference_fraction: float | None = None
    zero_fraction: float | None = None
    fp32_reference_zero_fraction: float | None = None
    lost_fraction: float | None = None
    """Non-zero in the FP32 reference but zero in the run."""
    threshold: float | None = None
    reference: str | None = None
    samples: list[UnderflowSample] = Field(default_factory=list)


class Overflow(Strict):
    limit: float | None = None
    act_amax: float | None = None
    act_amax_layer: str | None = None
    grad_amax: float | None = None
    grad_amax_layer: str | None = None
    grad_amax_unscaled: float | None = None
    amax: list[list[float | None]] = Field(default_factory=list)
    """(step, activation amax, gradient amax) per probe."""
    events: list[OverflowEvent] = Field(default_factory=list)
    events_dropped: int = 0


class NumericsResult(ProfileResult):
    """Profiler "numerics": loss scale, skipped steps, gradient norm, underflow, overflow."""

    name = "numerics"

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

    @property
    def skipped_count(self) -> int:
        """How many optimizer steps overflowed and were skipped."""
        v = self.skipped_steps
        return len(v) if isinstance(v, list) else int(v)

    @property
    def finite_grad_norm(self) -> list[tuple[int, float]]:
        """The sampled gradient norms, steps where it was not finite left out."""
        return [(s, v) for s, v in self.grad_norm if v is not None]

    @property
    def measured_underflow(self) -> Underflow | None:
        """The underflow shares, None when the probe measured none (no 16-bit run sampled)."""
        return self.underflow if self.underflow.fraction is not None else None
