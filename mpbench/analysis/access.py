"""Every read of optional record data goes through here (profiler output, bench rows, env card).

Profilers, the bench command and the distributed work fill these keys; when a key is
missing the accessors return None, and the claims and the report say "not measured".
Keeping the key names in one module makes a renamed key a one-line fix.
"""

from __future__ import annotations

from pydantic import BaseModel

from mpbench.results.env_card import Capabilities, TensorCores
from mpbench.results.key import ComparisonKey
from mpbench.results.payloads import (
    MaxBatchResult,
    MemoryResult,
    MfuResult,
    NumericsResult,
    NvmlResult,
    Overflow,
    ParallelResult,
    TensorCoreResult,
    stored,
)
from mpbench.results.recipe_card import Fp8Card, RecipeRole, recipe_card
from mpbench.results.schema import RunRecord

# Suite lines that turn each profiler on (names as registered in mpbench/profilers/).
ADD_PROFILER = {
    "memory": "profilers: [memory]",
    "tensor_cores": "profilers: [tensor_cores]",
    "nvml": "profilers: [nvml]",
    "numerics": "profilers: [numerics]",
    "max_batch": "profilers: [max_batch]",
}

MEMORY_PARTS = ("params_bytes", "grads_bytes", "optimizer_bytes", "activations_bytes",
                "fp8_cache_bytes", "other_bytes")


# -- recipe ------------------------------------------------------------------------------
def family(r: RunRecord) -> str:
    return recipe_card(r).family or r.precision


def role(r: RunRecord) -> RecipeRole:
    """baseline, mixed, context or other: what the recipe said it is (results/recipe_card)."""
    return recipe_card(r).role


def role_note(r: RunRecord) -> str:
    return recipe_card(r).role_note


def numerics_only(r: RunRecord) -> bool:
    """Emulated modes: their speed never counts towards a speed claim."""
    return recipe_card(r).numerics_only


def fp8_details(r: RunRecord) -> Fp8Card | None:
    return recipe_card(r).fp8


def config_key(r: RunRecord) -> ComparisonKey:
    """Runs with equal keys differ only in precision, seed and repeat, so they can be compared
    (the record's ConfigKey without its precision: results/key.py)."""
    return r.config_key.comparison


def config_label(key: ComparisonKey) -> str:
    return key.label


# -- memory ------------------------------------------------------------------------------
def peak_memory(r: RunRecord) -> float | None:
    if r.memory is not None and r.memory.peak_bytes is not None:
        return float(r.memory.peak_bytes)
    m = memory_breakdown(r)
    if m is not None and m.measured_peak_bytes is not None:
        return float(m.measured_peak_bytes)
    return None


def memory_kind(r: RunRecord) -> str | None:
    return r.memory.kind if r.memory is not None else None


def memory_breakdown(r: RunRecord) -> MemoryResult | None:
    m = stored(r, "memory", MemoryResult)
    if m is None or all(getattr(m, k) is None for k in MEMORY_PARTS):
        return None
    return m


def model_state_bytes(r: RunRecord) -> float | None:
    """Parameters + gradients + optimizer state (what Adam's 16 bytes/param counts)."""
    m = memory_breakdown(r)
    v = m.model_state_bytes if m else None
    return float(v) if v is not None else None


def activation_bytes(r: RunRecord) -> float | None:
    m = memory_breakdown(r)
    v = m.activations_bytes if m else None
    return float(v) if v is not None else None


def max_batch(r: RunRecord) -> tuple[int, str] | None:
    p = stored(r, "max_batch", MaxBatchResult)
    if p is None or p.max_batch_size is None:
        return None
    return p.max_batch_size, p.limit or ""


# -- tensor cores, energy -----------------------------------------------------------------
def tensor_core_profile(r: RunRecord) -> TensorCoreResult | None:
    p = stored(r, "tensor_cores", TensorCoreResult)
    return p if p is not None and p.buckets else None


def mfu_profile(r: RunRecord) -> MfuResult | None:
    """MFU against the measured GEMM ceiling of the run's dtype (and the spec peak)."""
    return stored(r, "mfu", MfuResult)


def nvml_profile(r: RunRecord) -> NvmlResult | None:
    return stored(r, "nvml", NvmlResult)


def joules_per_token(r: RunRecord) -> float | None:
    p = nvml_profile(r)
    return p.joules_per_token if p else None


# -- numerics ----------------------------------------------------------------------------
def numerics_profile(r: RunRecord) -> NumericsResult | None:
    return stored(r, "numerics", NumericsResult)


def loss_scale_history(r: RunRecord) -> list[tuple[int, float]]:
    p = numerics_profile(r)
    return [(int(s), float(v)) for s, v in p.loss_scale] if p else []


def grad_norm_history(r: RunRecord) -> list[tuple[int, float]]:
    """Sampled global gradient norms (before clipping); steps where it was not finite are left out."""
    p = numerics_profile(r)
    return [(int(s), float(v)) for s, v in p.grad_norm if v is not None] if p else []


def skipped_steps(r: RunRecord) -> int | None:
    """Overflowed (skipped) optimizer steps: the profiler lists their step numbers."""
    p = numerics_profile(r)
    if p is None:
        return None
    v = p.skipped_steps
    return len(v) if isinstance(v, list) else int(v)


class UnderflowShares(BaseModel):
    """Shares of the sampled activation-gradient elements (None: not measured)."""

    fraction: float | None = None
    """At or below FP16's smallest subnormal in the run."""
    reference: float | None = None
    """The same share in an FP32 reference pass on the same batch."""
    lost: float | None = None
    """Non-zero in the reference but zero in the run."""


def underflow(r: RunRecord) -> UnderflowShares | None:
    """Activation-gradient underflow of a 16-bit run, from the numerics profiler.

    fraction: share at or below FP16's smallest subnormal in the run; reference: the same
    share in an FP32 reference pass; lost: non-zero in the reference but zero in the run.
    """
    p = numerics_profile(r)
    if p is None or p.underflow.fraction is None:
        return None
    u = p.underflow
    return UnderflowShares(fraction=u.fraction, reference=u.fp32_reference_fraction,
                           lost=u.lost_fraction)


def overflow(r: RunRecord) -> Overflow | None:
    p = numerics_profile(r)
    return p.overflow if p else None


# -- distributed (from the torchrun work; absent on single-process runs) ------------------
def parallel_profile(r: RunRecord) -> ParallelResult | None:
    return stored(r, "parallel", ParallelResult)


class CommUse(BaseModel):
    """Gradient communication per step of a distributed run."""

    dtype: str
    bytes_per_step: int
    time_ms: float | None
    """The gradient collective's time when replayed alone (None: not probed)."""


def comm_profile(r: RunRecord) -> CommUse | None:
    """Read from the distributed probe (profiler_results["parallel"]): the comm dtype of the
    run, the bytes its collectives moved in a typical step, and the gradient collective's
    time when replayed alone."""
    par = parallel_profile(r)
    if par is None or par.comm_per_step is None or not par.grad_comm_dtype:
        return None
    alone = par.probe.comm_alone_ms if par.probe else {}
    op = "all_reduce" if par.strategy == "ddp" else "reduce_scatter"
    return CommUse(dtype=par.grad_comm_dtype, bytes_per_step=par.comm_per_step.bytes,
                   time_ms=alone.get(op))


# -- environment card --------------------------------------------------------------------
def device_kind(r: RunRecord) -> str:
    return "cuda" if r.device.startswith("cuda") else "cpu"


def capabilities(r: RunRecord) -> Capabilities:
    """What the device can do for each format, from the environment card (Capabilities)."""
    if device_kind(r) == "cuda":
        gpu = r.env.gpu
        tc = gpu.tensor_cores if gpu else TensorCores()
        return Capabilities(kind="cuda", name=gpu.name if gpu else r.device_name,
                            capability=gpu.capability if gpu else None, tensor_cores=tc.fp16,
                            fp16=tc.fp16, bf16=tc.bf16, tf32=tc.tf32, fp8=tc.fp8, mxfp8=tc.mxfp8)
    cpu = r.env.cpu
    overridden = bool(cpu.isa_env_overrides)
    return Capabilities(kind="cpu", name=cpu.model or r.device_name,
                        capability=cpu.torch_cpu_capability,
                        fp16=cpu.fast_fp16 and not overridden,
                        bf16=cpu.fast_bf16 and not overridden, isa_flags=list(cpu.isa_flags),
                        isa_env_overrides=dict(cpu.isa_env_overrides))
