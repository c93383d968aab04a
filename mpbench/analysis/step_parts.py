"""A profiled step's time by part: the tensor_cores profiler's stored buckets mapped onto the
parts a waterfall shows (GEMMs forward/backward, attention, casts, norm + elementwise,
optimizer, communication, other), and the names of the waterfall's other bars."""

from __future__ import annotations

from mpbench.profilers.kernel_rules import (
    ATTENTION,
    COMMUNICATION,
    ELEMENTWISE,
    FP8_CAST,
    MATMUL,
    NORMALIZATION,
    OPTIMIZER,
)
from mpbench.results.payloads import TensorCoreResult

GEMM = "gemm"
GEMM_FWD = "gemm_fwd"
GEMM_BWD = "gemm_bwd"
CASTS = "casts"
NORM_ELEMENTWISE = "norm_elementwise"
OTHER_OPS = "other_ops"
HOST = "host_gaps"
UNATTRIBUTED = "unattributed"
OVERHEAD = "profiler_overhead"
PARTS = (GEMM_FWD, GEMM_BWD, ATTENTION, CASTS, NORM_ELEMENTWISE, OPTIMIZER, COMMUNICATION,
         OTHER_OPS)
LABELS = {
    GEMM: "GEMMs (fwd + bwd, not split)",
    GEMM_FWD: "GEMMs forward",
    GEMM_BWD: "GEMMs backward",
    ATTENTION: "attention",
    CASTS: "casts / quantization",
    NORM_ELEMENTWISE: "norm + elementwise",
    OPTIMIZER: "optimizer + loss scaling",
    COMMUNICATION: "communication",
    OTHER_OPS: "other kernels / ops",
    OVERHEAD: "profiler cost in ops (plain-prof)",
    HOST: "host work, gaps (no kernel/op)",
    UNATTRIBUTED: "unattributed (window vs plain)",
}

CPU_CAST_OPS = frozenset({"aten::copy_", "aten::_to_copy", "aten::to"})
"""Operators autocast's casts spend their self time in on a CPU (only those listed among the
profiler's top operators can be taken out of the 'other' bucket; the rest stay there)."""


def _part_of_bucket(bucket: str) -> str:
    return {ATTENTION: ATTENTION, FP8_CAST: CASTS, NORMALIZATION: NORM_ELEMENTWISE,
            ELEMENTWISE: NORM_ELEMENTWISE, OPTIMIZER: OPTIMIZER,
            COMMUNICATION: COMMUNICATION}.get(bucket, OTHER_OPS)


def _is_gemm(bucket: str) -> bool:
    return bucket == MATMUL or bucket.startswith(("gemm_", "conv_"))


def step_parts(prof: TensorCoreResult) -> dict[str, float]:
    """One profiled run's time per step (ms) by part, from its stored buckets.

    On a CPU the buckets are matmul / attention / normalization / optimizer / other; 'other'
    is elementwise work, less the cast operators found among the top operators (casts).
    GEMM time is forward and backward by the stored phases; without them it is all under
    GEMM_FWD and `has_phases` says so."""
    steps = prof.steps or 1
    out = dict.fromkeys(PARTS, 0.0)
    cpu = prof.device_kind == "cpu"
    for bucket, us in prof.bucket_time_us.items():
        part = (GEMM_FWD if _is_gemm(bucket) else
                NORM_ELEMENTWISE if cpu and bucket == "other" else _part_of_bucket(bucket))
        out[part] += us / steps / 1000.0
    if has_phases(prof):
        fwd = sum(us for bucket, us in prof.phase_time_us.get("forward", {}).items()
                  if _is_gemm(bucket)) / steps / 1000.0
        out[GEMM_BWD] = max(out[GEMM_FWD] - fwd, 0.0)  # backward: the rest of the GEMM time
        out[GEMM_FWD] -= out[GEMM_BWD]
    if cpu:
        casts = sum(k.time_us for k in prof.top_kernels
                    if k.name in CPU_CAST_OPS and k.bucket == "other") / steps / 1000.0
        out[CASTS] += casts
        out[NORM_ELEMENTWISE] -= casts
    return out


def has_phases(prof: TensorCoreResult) -> bool:
    return bool(prof.phase_time_us)
