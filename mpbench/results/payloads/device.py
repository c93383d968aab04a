"""Results of the device profilers: "tensor_cores" (kernel buckets), "nvml" (power, energy,
GPM) and "mfu" (the figures of mpbench.mfu plus the ceiling they were measured against)."""

from __future__ import annotations

from pydantic import Field

from mpbench.mfu import MfuFigures
from mpbench.results.payloads.base import ProfileResult, Strict


class KernelTime(Strict):
    """One kernel (GPU) or operator (CPU) of the profiled steps, names merged."""

    name: str
    bucket: str
    time_us: float
    share: float
    """Of the summed kernel time."""


class KernelSummary(Strict):
    """Where the profiled steps' time went (profilers/profile_summary.py summarize)."""

    buckets: dict[str, float] = Field(default_factory=dict)
    """Share of summed kernel time per bucket."""
    bucket_time_us: dict[str, float] = Field(default_factory=dict)
    tensor_core_share: float | None = None
    """None on a CPU: it has no tensor cores."""
    top_kernels: list[KernelTime] = Field(default_factory=list)
    total_time_us: float | None = None
    """Summed kernel time: the denominator of every share (memcpy/memset left out)."""
    unclassified_share: float | None = None
    """Of kernel time, in names no rule knows (None on a CPU, and in records before it)."""
    unclassified_top: list[KernelTime] = Field(default_factory=list)
    """The unclassified names with the most time: the gap in the rules, by name."""
    copy_time_us: float | None = None
    """memcpy/memset (copy engine) time, outside the shares (None in older records)."""


class TensorCoreResult(KernelSummary, ProfileResult):
    """Profiler "tensor_cores": the kernel summary of a short torch.profiler window."""

    name = "tensor_cores"

    device_kind: str | None = None
    note: str | None = None
    steps: int | None = None
    gpu_busy_fraction: float | None = None
    """Time any kernel runs over the profiled steps' wall time (low: launch-bound)."""
    trace_path: str | None = None
    phase_time_us: dict[str, dict[str, float]] = Field(default_factory=dict)
    """Per phase of the step (forward, backward, optimizer), time per bucket
    (profilers/profile_summary.py; empty in records made before it)."""
    wall_time_us: float | None = None
    """Wall time of the profiled steps (None in records made before it)."""
    plain_step_us: list[float] = Field(default_factory=list)
    """Each unprofiled step's wall time, timed just before the profiler started (no profiler
    in the process): the waterfall's match for the measured window, and the profiled steps'
    time without the profiler's overhead. Empty in older records; schema-4 records hold one
    entry, the mean of steps timed between the profiled ones with collection off."""


class GpmMetrics(Strict):
    """NVML GPM utilisations over the window, percent (None: the metric failed)."""

    sm_util: float | None = None
    any_tensor_util: float | None = None
    hmma_tensor_util: float | None = None
    dram_bw_util: float | None = None
    fp32_util: float | None = None
    errors: dict[str, str] = Field(default_factory=dict)


class NvmlResult(ProfileResult):
    """Profiler "nvml": the measured window's power, clocks, energy and GPM."""

    name = "nvml"

    note: str | None = None
    steps: int | None = None
    window_s: float | None = None
    hook_s: float | None = None
    train_s: float | None = None
    """The window less hook work (eval, probes, other profilers)."""
    tokens: int | None = None
    samples: int = 0
    power_w_mean: float | None = None
    power_w_max: float | None = None
    sm_clock_mhz_mean: float | None = None
    sm_clock_mhz_min: float | None = None
    memory_used_bytes_max: int | None = None
    throttle_reasons: list[str] = Field(default_factory=list)
    throttle_fraction: dict[str, float] = Field(default_factory=dict)
    window_energy_j: float | None = None
    hook_energy_j: float | None = None
    energy_j: float | None = None
    joules_per_token: float | None = None
    energy_source: str | None = None
    gpm: GpmMetrics | None = None
    gpm_unsupported: str | None = None
    """Why there are no GPM figures (pre-Hopper, old nvidia-ml-py, disabled)."""
    sampler_cpu_s: float | None = None
    overhead_fraction: float | None = None


class MfuResult(MfuFigures, ProfileResult):
    """Profiler "mfu": mpbench.mfu's figures, the FLOPs they rest on and the ceilings."""

    name = "mfu"

    flops_per_token: float | None = None
    flops_per_token_counter: float | None = None
    flops_method: str | None = None
    ceilings_tflops: dict[str, float | None] = Field(default_factory=dict)
    """The measured ceiling per GEMM dtype (fp8 runs also measure bf16)."""
    torch_threads: int | None = None
    mfu_vs_bf16_ceiling: float | None = None
    warning: str | None = None
    """Set when the formula and FlopCounterMode differ by more than 2%."""
