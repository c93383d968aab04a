"""Sort GPU kernel names (and CPU op names) into buckets: where does the step's time go?

Pure functions on names and durations, so they can be tested on recorded kernel names.
Names are matched case-insensitively; the order of the checks matters and is explained
at each step. Facts the rules rest on:
- Hopper cuBLAS GEMMs are `nvjet_*` (no "gemm" in the name). After `nvjet_[smNN_]` comes a
  type code: `hsh`/`hss` fp16, `tst`/`tss` bf16, `sss_tf32` tf32, and two extra leading
  letters for FP8 inputs (`qqtst`, `qqhsh`).
- `xmma_gemm_<A><B>_<compute>...`: `f32f32_tf32f32` is TF32 on tensor cores, while
  `f32f32_f32f32` (often ending in `ffma`) is strict FP32 on CUDA cores.
- Tensor cores have no IEEE FP32 mode: SIMT `sgemm`, `ffma` and `gemv` kernels are
  CUDA-core work even though their names say "gemm".
- Attention kernels (flash, fmha, cuDNN sdpa) run their matmuls on tensor cores; FP32
  memory-efficient attention does so as 3xTF32 from SM 8.0 on (see uses_tensor_cores).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

GEMM_FP8 = "gemm_fp8"
GEMM_BF16 = "gemm_bf16"
GEMM_FP16 = "gemm_fp16"
GEMM_TF32 = "gemm_tf32"
GEMM_TC = "gemm_tensor_core"
"""A tensor-core GEMM whose input dtype the name does not tell."""
GEMM_SIMT = "gemm_simt"
"""FP32 (or FP64) GEMM/GEMV on CUDA cores: not tensor-core work."""
ATTENTION = "attention"
FP8_CAST = "fp8_cast"
"""FP8 quantisation work: casts, amax reductions, scale updates, cast+transpose."""
NORMALIZATION = "normalization"
ELEMENTWISE = "elementwise"
"""Elementwise, reductions, copies, indexing, softmax: memory-bound kernels."""
OPTIMIZER = "optimizer"
"""Optimizer step, gradient clipping and loss-scaling bookkeeping."""
COMMUNICATION = "communication"
OTHER = "other"

GPU_BUCKETS = (GEMM_FP8, GEMM_BF16, GEMM_FP16, GEMM_TF32, GEMM_TC, GEMM_SIMT, ATTENTION,
               FP8_CAST, NORMALIZATION, ELEMENTWISE, OPTIMIZER, COMMUNICATION, OTHER)
TENSOR_CORE_BUCKETS = frozenset({GEMM_FP8, GEMM_BF16, GEMM_FP16, GEMM_TF32, GEMM_TC, ATTENTION})

MATMUL = "matmul"
CPU_BUCKETS = (MATMUL, ATTENTION, NORMALIZATION, OPTIMIZER, OTHER)

_COMM = re.compile(r"nccl|all_?reduce|all_?gather|reduce_?scatter|sendrecv|alltoall", re.I)
_ATTENTION = re.compile(r"flash|fmha|sdpa|attention|attn_", re.I)
_GEMM = re.compile(r"nvjet|gemm|xmma|wgmma|tensorop|s16816|s1688|h16816|h1688|h884|matmul|"
                   r"_scaled_mm|gemv", re.I)
_NVJET_CODE = re.compile(r"nvjet_(?:sm\d+_)?([a-z]+)", re.I)
_XMMA_TYPES = re.compile(r"xmma_\w*?gemm_([a-z0-9]+)_([a-z0-9]+)_", re.I)
_FP8_HINT = re.compile(r"e4m3|e5m2|fp8|float8|f8f8|__nv_fp8|_f8_|qqtst|qqhsh|qqtss|qqhss", re.I)
_BF16_HINT = re.compile(r"bf16|bfloat16", re.I)
_FP16_HINT = re.compile(r"fp16|f16|half|h884|h1688|h16816|hgemm", re.I)
_SIMT_HINT = re.compile(r"sgemm|dgemm|ffma|simt|gemv|f32f32_f32f32|f64", re.I)
_FP8_WORK = re.compile(r"fp8|float8|e4m3|e5m2|amax|casttranspose|computescale|scaleupdate|"
                       r"delayedscaling|quantize|fp8cast|mxfp8", re.I)
_NORM = re.compile(r"layer_?norm|rms_?norm|ln_fwd|ln_bwd|gammabeta|cucomputegradinput|"
                   r"cuapplylayernorm|cuapplyrmsnorm|batch_?norm|group_?norm|normalization", re.I)
_OPTIMIZER = re.compile(r"multi_tensor_apply|adam|sgd|lamb|lpnorm|_amp_|amp_update_scale|"
                        r"non_finite_check|unscale", re.I)
_ELEMENTWISE = re.compile(r"elementwise|vectorized|unrolled|reduce_kernel|reduction|triton_|"
                          r"softmax|at::native|copy|fill|index|gather|scatter|embedding|"
                          r"gelu|silu|dropout|cross_entropy|nll_loss|cat_|catarray|where|"
                          r"transpose|arange|rope|rotary", re.I)


Rule = tuple[re.Pattern[str], str | None]
"""(pattern, bucket): the first rule whose pattern the name matches gives the bucket."""

_GEMM_RULE = None
"""A GEMM: its dtype bucket is decided by _gemm_bucket."""

_KERNEL_RULES: tuple[Rule, ...] = (
    (_COMM, COMMUNICATION),  # NCCL kernels first: their names can contain dtype words
    (_ATTENTION, ATTENTION),  # before GEMM: cuDNN sdpa names contain "wgmma"
    (_GEMM, _GEMM_RULE),
    (_NORM, NORMALIZATION),  # before FP8: TE fuses the FP8 cast into its norm kernels
    (_FP8_WORK, FP8_CAST),
    (_OPTIMIZER, OPTIMIZER),
    (_ELEMENTWISE, ELEMENTWISE),
)
_ON_FLAT_NAME = frozenset({_FP8_WORK})
"""Rules matched on the name without '_' and ' ' (cast_transpose and casttranspose alike)."""

_GEMM_NAME_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # A GEMM name without an nvjet or xmma type code: hints in the name, in this order.
    (_FP8_HINT, GEMM_FP8),
    (re.compile(r"tf32", re.I), GEMM_TF32),
    (_SIMT_HINT, GEMM_SIMT),
    (_BF16_HINT, GEMM_BF16),
    (_FP16_HINT, GEMM_FP16),
    (re.compile(r"s1688gemm|tensorop_s1688", re.I), GEMM_TF32),  # FP32 accumulate, TF32 inputs
)
_XMMA_INPUT_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (_FP8_HINT, GEMM_FP8),
    (re.compile(r"bf16"), GEMM_BF16),
    (re.compile(r"f16"), GEMM_FP16),
)


def _first(rules: tuple[tuple[re.Pattern[str], str], ...], text: str) -> str | None:
    return next((bucket for pattern, bucket in rules if pattern.search(text)), None)


def classify_kernel(name: str) -> str:
    """The bucket of one GPU kernel name."""
    flat = name.replace("_", "").replace(" ", "")
    for pattern, bucket in _KERNEL_RULES:
        if pattern.search(flat if pattern in _ON_FLAT_NAME else name):
            return _gemm_bucket(name) if bucket is _GEMM_RULE else bucket
    return OTHER


def _gemm_bucket(name: str) -> str:
    nvjet = _NVJET_CODE.search(name)
    if nvjet:
        return _nvjet_bucket(nvjet.group(1).lower(), name)
    xmma = _XMMA_TYPES.search(name)
    if xmma:  # A/B types, then the compute types: the second group says TF32 vs FP32
        inputs, compute = xmma.group(1).lower(), xmma.group(2).lower()
        found = _first(_XMMA_INPUT_RULES, inputs)
        if found is not None:
            return found
        if "tf32" in compute or "tf32" in inputs:
            return GEMM_TF32
        return GEMM_SIMT if "f32" in inputs or "f64" in inputs else GEMM_TC
    return _first(_GEMM_NAME_RULES, name) or GEMM_TC


def _nvjet_bucket(code: str, name: str) -> str:
    """`hsh` fp16, `tst` bf16, `sss` + `_tf32` tf32; five letters: two FP8 input types first."""
    if len(code) >= 5 or _FP8_HINT.search(name):
        return GEMM_FP8
    first = code[:1]
    if first == "s":
        return GEMM_TF32 if "tf32" in name.lower() else GEMM_TC
    return {"t": GEMM_BF16, "h": GEMM_FP16}.get(first, GEMM_TC)


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
    return OPTIMIZER if in_optimizer else _first(_CPU_RULES, name) or OTHER


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
              sm: int | None = None) -> dict[str, Any]:
    """Shares of total time per bucket, the top entries by time (names merged), and the
    tensor-core share (time in tensor-core kernels over all kernel time)."""
    per_name: dict[str, list[float | str]] = {}
    totals = dict.fromkeys(buckets, 0.0)
    tensor_core = 0.0
    for item in items:
        totals[item.bucket] = totals.get(item.bucket, 0.0) + item.time_us
        tensor_core += item.time_us if uses_tensor_cores(item, sm) else 0.0
        entry = per_name.setdefault(item.name, [0.0, item.bucket])
        entry[0] = float(entry[0]) + item.time_us
    total = sum(totals.values())
    shares = {b: (t / total if total > 0 else 0.0) for b, t in totals.items()}
    ranked = sorted(per_name.items(), key=lambda kv: -float(kv[1][0]))[:top]
    return {
        "buckets": shares,
        "bucket_time_us": totals,
        "tensor_core_share": tensor_core / total if total > 0 else 0.0,
        "top_kernels": [
            {"name": name[:300], "bucket": str(bucket), "time_us": float(t),
             "share": float(t) / total if total > 0 else 0.0}
            for name, (t, bucket) in ranked
        ],
        "total_time_us": total,
    }
