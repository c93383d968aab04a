"""Result of the "fingerprint" profiler: the numerics of a short fixed-seed, fixed-data run.

Per step the loss and the global gradient norm; at the probe steps, per layer (leaf module
output, in forward order) the activation and activation-gradient amax, the shares of their
elements that underflow or overflow each format the fingerprint watches, and for FP8 recipes
the scale each FP8 operand used. With it, the software that produced the numbers. The gate
compares two of these (analysis/fingerprint.py); nothing here imports torch.
"""

from __future__ import annotations

from pydantic import Field

from mpbench.results.payloads.base import ProfileResult, Strict


class StepPoint(Strict):
    """One training step (0-based over warm-up and measured steps alike)."""

    step: int
    loss: float | str
    """'nan' or 'inf' as text where it was not finite."""
    grad_norm: float | str | None = None
    """Global norm of the parameter gradients before clipping (unscaled)."""


class TensorProbe(Strict):
    """One layer's output (tensor 'activation') or its gradient ('gradient') at a probe step."""

    step: int
    layer: str
    tensor: str
    """'activation' or 'gradient'."""
    order: int
    """Position in which the tensor appeared: forward order for activations, the order the
    gradients arrived in backward for gradients (0 = nearest the loss)."""
    dtype: str
    amax: float | str
    elements: int
    underflow: dict[str, float] = Field(default_factory=dict)
    """Per format: share of elements that are zero or below the format's smallest subnormal in
    magnitude (what the format holds as zero), after per-tensor scaling for FP8 formats."""
    overflow: dict[str, float] = Field(default_factory=dict)
    """Per format: share of elements above the format's largest finite value, or not finite."""


class ScaleProbe(Strict):
    """The scale one FP8 operand of one layer used at a probe step (scale = fp8_max / amax)."""

    step: int
    layer: str
    operand: str
    """input, weight or grad_output."""
    scale: float | str
    amax: float | str | None = None


class Software(Strict):
    """What produced the numbers: the versions and settings that can change them."""

    torch: str
    cuda: str | None = None
    cudnn: str | None = None
    transformer_engine: str | None = None
    torchao: str | None = None
    python: str | None = None
    numpy: str | None = None
    device: str | None = None
    """GPU name, or the CPU model."""
    driver: str | None = None
    deterministic_algorithms: bool = False
    deterministic_warn_only: bool = False
    cudnn_deterministic: bool | None = None
    cudnn_benchmark: bool | None = None
    float32_matmul_precision: str | None = None
    cublas_workspace_config: str | None = None
    cpu_capability: str | None = None
    threads: int | None = None


class FingerprintResult(ProfileResult):
    """Profiler "fingerprint" (see profilers/fingerprint.py)."""

    name = "fingerprint"

    reference_seed: int
    """The seed of the fingerprint itself; runs of other seeds (FP32) form the seed band."""
    seed: int
    repeat: int = 0
    formats: list[str] = Field(default_factory=list)
    """The recipe's formats, whose underflow and overflow shares are recorded."""
    probe_steps: list[int] = Field(default_factory=list)
    steps: list[StepPoint] = Field(default_factory=list)
    tensors: list[TensorProbe] = Field(default_factory=list)
    scales: list[ScaleProbe] = Field(default_factory=list)
    software: Software
    overhead_s: float | None = None
    """Time in the profiler's step-end work (collecting a probe step: one host sync); the
    hooks' reductions during a probe step count in that step's time."""
