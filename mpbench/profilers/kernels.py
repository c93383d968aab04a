"""Where a profiled step's time goes: GPU kernels (rules in profilers/kernel_rules.py) and
CPU operators sorted into buckets, and the summary of a profile (shares per bucket, the
tensor-core share, the top kernels, the unclassified names, the copy-engine time).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mpbench.profilers.kernel_buckets import (  # re-exported: the one place callers import
    ATTENTION,
    COMMUNICATION,
    CONV_SIMT,
    CONV_TC,
    COPY,
    CPU_BUCKETS,
    ELEMENTWISE,
    FP8_CAST,
    GEMM_BF16,
    GEMM_FP4,
    GEMM_FP8,
    GEMM_FP16,
    GEMM_SIMT,
    GEMM_TC,
    GEMM_TF32,
    GPU_BUCKETS,
    MATMUL,
    NORMALIZATION,
    OPTIMIZER,
    OTHER,
    TENSOR_CORE_BUCKETS,
    UNCLASSIFIED,
)
from mpbench.profilers.kernel_rules import classify_kernel

__all__ = ["ATTENTION", "COMMUNICATION", "CONV_SIMT", "CONV_TC", "COPY", "CPU_BUCKETS",
           "ELEMENTWISE", "FP8_CAST", "GEMM_BF16", "GEMM_FP4", "GEMM_FP8", "GEMM_FP16",
           "GEMM_SIMT", "GEMM_TC", "GEMM_TF32", "GPU_BUCKETS", "MATMUL", "NORMALIZATION",
           "OPTIMIZER", "OTHER", "TENSOR_CORE_BUCKETS", "UNCLASSIFIED", "Timed",
           "classify_cpu_op", "classify_kernel", "summarize", "uses_tensor_cores"]

_CPU_MATMUL = re.compile(r"^aten::(mm|addmm|bmm|baddbmm|linear|matmul|_scaled_mm|addmv|mv|dot|"
                         r"_addmm_activation|mkldnn_\w*linear|_weight_int8pack_mm)$")
_CPU_ATTENTION = re.compile(r"scaled_dot_product|flash_attention|efficient_attention|"
                            r"_cudnn_attention|attention", re.I)
_CPU_NORM = re.compile(r"layer_norm|rms_norm|group_norm|batch_norm", re.I)
_CPU_OPTIMIZER = re.compile(r"^Optimizer\.|_fused_adam|_foreach_|adamw?_|_amp_", re.I)
_CPU_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (_CPU_OPTIMIZER, OPTIMIZER),
    (_CPU_ATTENTION, ATTENTION),
    (_CPU_MATMUL, MATMUL),  # anchored: the operator itself, not one that calls it
    (_CPU_NORM, NORMALIZATION),
)


def classify_cpu_op(name: str, in_optimizer: bool = False) -> str:
    """The bucket of one CPU operator (self time), given whether it ran inside optimizer.step."""
    if in_optimizer:
        return OPTIMIZER
    return next((bucket for pattern, bucket in _CPU_RULES if pattern.search(name)), OTHER)


@dataclass(frozen=True)
class Timed:
    name: str
    time_us: float
    bucket: str


_FP32_ATTENTION = re.compile(r"_f32_|float32|cutlassF_f32|cutlassB_f32", re.I)
_KERNEL_ARCH = re.compile(r"_sm(\d{2,3})(?![0-9])", re.I)


def uses_tensor_cores(item: Timed, sm: int | None = None) -> bool:
    """Tensor-core buckets; FP32 attention only from SM 8.0 on.

    torch's memory-efficient attention (`fmha_cutlassF/B_f32_..._smNN`) picks its GEMM in
    mem_eff_attention/gemm_kernel_utils.h (DefaultGemmType): for float on an arch tag >= 80
    it is OpClassTensorOp with OpMultiplyAddFastF32, CUTLASS's 3xTF32 on tensor cores; on
    older tags it falls back to SIMT FMA on CUDA cores. The tag is in the kernel name (the
    sm80 kernel also runs on Hopper); without one, `sm` (the device's major*10+minor) decides.
    """
    if item.bucket not in TENSOR_CORE_BUCKETS:
        return False
    if item.bucket != ATTENTION or not _FP32_ATTENTION.search(item.name):
        return True
    tag = _KERNEL_ARCH.search(item.name)
    arch = int(tag.group(1)) if tag else sm
    return arch is not None and arch >= 80


def summarize(items: Iterable[Timed], buckets: tuple[str, ...], top: int = 10,
              sm: int | None = None, unclassified_top: int = 5) -> dict[str, Any]:
    """Shares of kernel time per bucket, the top entries by time (names merged), the
    tensor-core share (time in tensor-core kernels over all kernel time), the unclassified
    share and its top names. memcpy/memset items are summed apart (copy_time_us): they are
    not kernels and stay out of every share."""
    per_name: dict[str, list[float | str]] = {}
    totals = dict.fromkeys(buckets, 0.0)
    tensor_core = copy_us = 0.0
    for item in items:
        if item.bucket == COPY:
            copy_us += item.time_us
            continue
        totals[item.bucket] = totals.get(item.bucket, 0.0) + item.time_us
        tensor_core += item.time_us if uses_tensor_cores(item, sm) else 0.0
        entry = per_name.setdefault(item.name, [0.0, item.bucket])
        entry[0] = float(entry[0]) + item.time_us
    total = sum(totals.values())

    def share(t: float) -> float:
        return t / total if total > 0 else 0.0

    def listed(entries: list[tuple[str, list[float | str]]]) -> list[dict[str, Any]]:
        return [{"name": name[:300], "bucket": str(bucket), "time_us": float(t),
                 "share": share(float(t))} for name, (t, bucket) in entries]

    ranked = sorted(per_name.items(), key=lambda kv: -float(kv[1][0]))
    out: dict[str, Any] = {
        "buckets": {b: share(t) for b, t in totals.items()},
        "bucket_time_us": totals,
        "tensor_core_share": share(tensor_core),
        "top_kernels": listed(ranked[:top]),
        "total_time_us": total,
    }
    if UNCLASSIFIED in buckets:  # GPU kernels; CPU operators fall in "other" by design
        out["copy_time_us"] = copy_us
        out["unclassified_share"] = share(totals[UNCLASSIFIED])
        out["unclassified_top"] = listed(
            [kv for kv in ranked if kv[1][1] == UNCLASSIFIED][:unclassified_top])
    return out
