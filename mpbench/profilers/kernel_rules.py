"""The buckets a profiled step's time is sorted into, and the rules that sort it: a GPU kernel
by its name, a CPU operator by its name and whether it ran inside optimizer.step.

The GPU bucket is a pure function of the name, tested on the kernels of public profiler traces of real GPU
runs (tests/data/kernel_traces). Rules match the kernel's own function name
(profilers/kernel_names.py): namespaces, template arguments and parameter lists are dropped
first, since `fbgemm_gpu::`, `c10::Half`, `{lambda()#1}` or `vllm::` say nothing about what a
kernel computes. Matching is case-insensitive and the order of the rules matters (each step
says why). Facts the rules rest on:
- Hopper cuBLAS GEMMs are `nvjet_*` (no "gemm" in the name). After `nvjet_[smNN_]` comes a
  type code: `hsh`/`hss` fp16, `tst`/`tss` bf16, `sss_tf32` tf32, and two extra leading
  letters for FP8 inputs (`qqtst`, `qqhsh`).
- `xmma_gemm_<A><B>_<compute>...`: `f32f32_tf32f32` is TF32 on tensor cores, while
  `f32f32_f32f32` (often ending in `ffma`) is strict FP32 on CUDA cores.
- TensorRT-LLM's Blackwell batched GEMMs are `bmm_<out>_<A><B>_<acc>_...`
  (`bmm_MxE4m3_MxE2m1MxE4m3_Fp32`: MXFP4 x MXFP8 inputs; both E2m1: FP4).
- Tensor cores have no IEEE FP32 mode: SIMT `sgemm`, `ffma`, `gemv` and the complex
  `cgemm`/`gcgemm` (cuDNN's FFT convolutions) are CUDA-core work though named "gemm".
- cuDNN convolutions: `scudnn`, `implicit_convolve_sgemm`, `dgrad_engine`, `wgrad_alg0_engine`
  and winograd transforms run on CUDA cores; `xmma_fprop/dgrad/wgrad`, `h1688`/`s1688`
  (`tensorop`) and tf32 ones on tensor cores.
- Attention kernels (flash, fmha, cuDNN sdpa) run their matmuls on tensor cores; FP32
  memory-efficient attention does so as 3xTF32 from SM 8.0 on (see uses_tensor_cores). Their
  helpers (`flash_bwd_dot_do_o`, `flash_bwd_convert_dq`, split-KV combine) are memory-bound.
- Inductor names its kernels `triton_poi_` (pointwise), `triton_red_`/`triton_per_`
  (reductions) and `triton_tem_` (templates: matmul, conv, flex attention).
- memcpy/memset events are copy-engine (or driver) work, not kernels: they are summed on
  their own and left out of the shares.
A name no rule knows is "unclassified", counted and listed, never folded into a bucket.
CPU operators have no such gap: one that no rule knows is "other" by design.
"""

from __future__ import annotations

import re
from functools import lru_cache

from mpbench.profilers.kernel_names import kernel_identity, kernel_template_args

GEMM_FP4 = "gemm_fp4"
GEMM_FP8 = "gemm_fp8"
"""FP8 inputs, and mixed FP4 x FP8 (Blackwell's mxf8f6f4 MMA runs them at the FP8 rate)."""
GEMM_BF16 = "gemm_bf16"
GEMM_FP16 = "gemm_fp16"
GEMM_TF32 = "gemm_tf32"
GEMM_TC = "gemm_tensor_core"
"""A tensor-core GEMM whose input dtype the name does not tell."""
GEMM_SIMT = "gemm_simt"
"""FP32 (or FP64, complex) GEMM/GEMV on CUDA cores: not tensor-core work."""
CONV_TC = "conv_tensor_core"
CONV_SIMT = "conv_simt"
"""Convolutions on CUDA cores, with cuDNN's transform, offset and wgrad-reduction kernels."""
ATTENTION = "attention"
FP8_CAST = "fp8_cast"
"""Quantisation work (FP8, FP4, block-scaled): casts, amax reductions, scale updates,
cast+transpose."""
NORMALIZATION = "normalization"
ELEMENTWISE = "elementwise"
"""Elementwise, reductions, indexing, embeddings, softmax, layout: memory-bound kernels."""
OPTIMIZER = "optimizer"
"""Optimizer step, gradient clipping and loss-scaling bookkeeping."""
COMMUNICATION = "communication"
OTHER = "other"
"""Known kernels of none of the kinds above (FFTs outside cuDNN, waits, spins)."""
UNCLASSIFIED = "unclassified"
"""No rule knows the name: a gap in the rules, shown as such."""
COPY = "memcpy_memset"
"""Copy-engine and memset events: reported apart, outside the shares."""

GPU_BUCKETS = (GEMM_FP4, GEMM_FP8, GEMM_BF16, GEMM_FP16, GEMM_TF32, GEMM_TC, GEMM_SIMT,
               CONV_TC, CONV_SIMT, ATTENTION, FP8_CAST, NORMALIZATION, ELEMENTWISE, OPTIMIZER,
               COMMUNICATION, OTHER, UNCLASSIFIED)
TENSOR_CORE_BUCKETS = frozenset({GEMM_FP4, GEMM_FP8, GEMM_BF16, GEMM_FP16, GEMM_TF32, GEMM_TC,
                                 CONV_TC, ATTENTION})

MATMUL = "matmul"
"""CPU operators only: matrix multiplies of any dtype (an operator's name does not tell it)."""
CPU_BUCKETS = (MATMUL, ATTENTION, NORMALIZATION, OPTIMIZER, OTHER)

_COPY = re.compile(r"^\s*(memcpy|memset)\b", re.I)
_COMM = re.compile(r"nccl|all_?reduce|all_?gather|reduce_?scatter|sendrecv|alltoall|"
                   r"cross_device_reduce|allreduce_fusion|lamport", re.I)
_HELPER = re.compile(r"dot_do_o|convert_dq|convert_dkv|bwdpreprocess|bwdpostprocess|"
                     r"splitkv_combine|combine_kernel|reduce_kernel|mergestate|"
                     r"reshape_and_cache|store_kvcache|copy_page_indices", re.I)
_ATTENTION = re.compile(r"flash|fmha|sdpa|attention|attn|"
                        r"with(paged|ragged)?kvcache", re.I)
"""FlashInfer names its attention kernels `BatchPrefillWithPagedKVCacheKernel`,
`BatchDecodeWithPagedKVCacheKernel`, `SinglePrefillWithKVCacheKernel`."""
_CONV = re.compile(r"conv(?!ert)|fprop|dgrad|wgrad|scudnn|winograd|im2col|fft2d|"
                   r"computeoffsets|computeboffsets|computewgrad", re.I)
_CONV_TC = re.compile(r"xmma|hmma|imma|tensorop|wgmma|s1688|s16816|h1688|h16816|h884|i8816|"
                      r"tf32|tfloat32|bf16|f16", re.I)
_GEMM = re.compile(r"nvjet|gemm|xmma|wgmma|tensorop|s16816|s1688|h16816|h1688|h884|matmul|"
                   r"_scaled_mm|gemv|^bmm_|cutlass_\d+_|dot_kernel|^fused_moe_kernel", re.I)
"""`fused_moe_kernel` is vLLM's and SGLang's Triton grouped GEMM of the MoE experts."""
_TRITON_TEMPLATE = re.compile(r"^triton_tem_", re.I)
_TRITON_NORM = re.compile(r"^triton_(red|per)_\w*norm", re.I)
_TRITON_POINTWISE = re.compile(r"^triton_(poi|red|per)_", re.I)
_NVJET_CODE = re.compile(r"nvjet_(?:sm\d+_)?([a-z]+)", re.I)
_XMMA_TYPES = re.compile(r"xmma_\w*?gemm_([a-z0-9]+)_([a-z0-9]+)_", re.I)
_TRTLLM_BMM = re.compile(r"^bmm_[a-z0-9]+_([a-z0-9]+)_", re.I)
_FP4_TYPE = re.compile(r"e2m1|fp4", re.I)
_FP8_TYPE = re.compile(r"e4m3|e5m2|fp8|float8", re.I)
_FP8_HINT = re.compile(r"e4m3|e5m2|fp8|float8|f8f8|_f8_|qqtst|qqhsh|qqtss|qqhss", re.I)
_BF16_HINT = re.compile(r"bf16|bfloat16", re.I)
_FP16_HINT = re.compile(r"fp16|f16|half|h884|h1688|h16816|hgemm", re.I)
_SIMT_HINT = re.compile(r"sgemm|dgemm|cgemm|zgemm|ffma|simt|gemv|gemmk1|dot_kernel|"
                        r"f32f32_f32f32|f64", re.I)
_FP8_WORK = re.compile(r"fp8|fp4|float8|e4m3|e5m2|e2m1|amax|casttranspose|computescale|"
                       r"scaleupdate|delayedscaling|quant", re.I)
_NORM = re.compile(r"layer_?norm|rms_?norm|ln_fwd|ln_bwd|gammabeta|cucomputegradinput|"
                   r"cuapplylayernorm|cuapplyrmsnorm|batch_?norm|group_?norm|normalization|"
                   r"^bn_|rowwisemoments|layernorm", re.I)
_EMBEDDING = re.compile(r"embedding|embs?_", re.I)
_OPTIMIZER = re.compile(r"multi_tensor_apply|adam|sgd|lamb(?!da)|lpnorm|_amp_|amp_update_scale|"
                        r"non_finite_check|unscale|adagrad", re.I)
_ELEMENTWISE = re.compile(r"elementwise|vectorized|unrolled|reduce|reduction|softmax|copy|fill|"
                          r"index|gather|scatter|gelu|silu|dropout|cross_entropy|nll|criterion|"
                          r"cat_|catarray|where|transpose|arange|rope|rotary|pool|permute|sort|"
                          r"scan|histogram|compact|bucketize|bounds_check|offsets_range|"
                          r"to_dense|upsample|searchsorted|nchwtonhwc|nhwctonchw|distribution|"
                          r"globalkernel|scal_kernel|scalepackedtensor|routing|finalize|"
                          r"act_and_mul|activation|topk|cumsum|jagged|align_block_size", re.I)
_OTHER = re.compile(r"spin_kernel|regular_fft|vector_fft|sleep|delay_kernel", re.I)


Rule = tuple[re.Pattern[str], str | None]
"""(pattern, bucket): the first rule whose pattern the kernel's own name matches decides."""

_KERNEL_RULES: tuple[Rule, ...] = (
    (_COMM, COMMUNICATION),  # NCCL and custom all-reduce kernels: their names hold dtype words
    (_HELPER, ELEMENTWISE),  # attention helpers and KV-cache copies, before "flash"/"attn"
    (_TRITON_TEMPLATE, None),  # Inductor templates: matmul, conv or flex attention
    (_ATTENTION, ATTENTION),  # before GEMM: cuDNN sdpa names contain "wgmma"
    (_CONV, None),  # before GEMM: implicit_convolve_sgemm, xmma_fprop_implicit_gemm
    (_GEMM, None),
    (_NORM, NORMALIZATION),  # before FP8: TE fuses the FP8 cast into its norm kernels
    (_TRITON_NORM, NORMALIZATION),
    (_TRITON_POINTWISE, ELEMENTWISE),  # before FP8: Inductor fuses casts into pointwise ops
    (_FP8_WORK, FP8_CAST),
    (_EMBEDDING, ELEMENTWISE),  # before optimizer: fbgemm fuses rowwise adagrad into backward
    (_OPTIMIZER, OPTIMIZER),
    (_ELEMENTWISE, ELEMENTWISE),
    (_OTHER, OTHER),
)
_ON_FLAT_NAME = frozenset({_FP8_WORK})
"""Rules matched on the name without '_' and ' ' (cast_transpose and casttranspose alike)."""

_GEMM_NAME_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # A GEMM name without an nvjet, xmma or bmm type code: hints in the name, in this order.
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
_TEMPLATE_DTYPES: tuple[tuple[re.Pattern[str], str], ...] = (
    # CUTLASS/CuTe element types in a GEMM's template arguments
    (re.compile(r"float_e[45]m[23]|__nv_fp8|float8_e"), GEMM_FP8),
    (re.compile(r"bfloat16_t|__nv_bfloat16|c10::BFloat16"), GEMM_BF16),
    (re.compile(r"half_t|__half\b|c10::Half"), GEMM_FP16),
    (re.compile(r"tfloat32_t"), GEMM_TF32),
)


def _first(rules: tuple[tuple[re.Pattern[str], str], ...], text: str) -> str | None:
    return next((bucket for pattern, bucket in rules if pattern.search(text)), None)


@lru_cache(maxsize=65536)
def classify_kernel(name: str) -> str:
    """The bucket of one GPU kernel name (cached: a profile repeats few names many times)."""
    if _COPY.match(name):
        return COPY
    own = kernel_identity(name)
    flat = own.replace("_", "").replace(" ", "")
    for pattern, bucket in _KERNEL_RULES:
        if not pattern.search(flat if pattern in _ON_FLAT_NAME else own):
            continue
        if pattern is _TRITON_TEMPLATE:
            return _triton_template_bucket(own)
        if pattern is _CONV:
            return CONV_TC if _CONV_TC.search(own) else CONV_SIMT
        if pattern is _GEMM:
            return _gemm_bucket(own, name)
        return bucket or UNCLASSIFIED
    return UNCLASSIFIED


def _triton_template_bucket(own: str) -> str:
    if _ATTENTION.search(own):  # flex attention
        return ATTENTION
    return CONV_TC if re.search(r"convolution", own, re.I) else GEMM_TC


def _gemm_bucket(own: str, name: str) -> str:
    nvjet = _NVJET_CODE.search(own)
    if nvjet:
        return _nvjet_bucket(nvjet.group(1).lower(), own)
    xmma = _XMMA_TYPES.search(own)
    if xmma:  # A/B types, then the compute types: the second group says TF32 vs FP32
        inputs, compute = xmma.group(1).lower(), xmma.group(2).lower()
        found = _first(_XMMA_INPUT_RULES, inputs)
        if found is not None:
            return found
        if "tf32" in compute or "tf32" in inputs:
            return GEMM_TF32
        return GEMM_SIMT if "f32" in inputs or "f64" in inputs else GEMM_TC
    bmm = _TRTLLM_BMM.search(own)
    if bmm:
        return _input_types_bucket(bmm.group(1))
    found = _first(_GEMM_NAME_RULES, own)
    if found is None and "cutlass" in name:  # CUTLASS 3: the element types are template args
        found = _first(_TEMPLATE_DTYPES, kernel_template_args(name))
    return found or GEMM_TC


def _input_types_bucket(inputs: str) -> str:
    """`MxE2m1MxE4m3` -> FP8 (mixed FP4 x FP8 runs at the FP8 rate); `E2m1E2m1` -> FP4."""
    if _FP4_TYPE.search(inputs) and not _FP8_TYPE.search(inputs):
        return GEMM_FP4
    if _FP8_TYPE.search(inputs) or _FP4_TYPE.search(inputs):
        return GEMM_FP8
    return _first(((_BF16_HINT, GEMM_BF16), (_FP16_HINT, GEMM_FP16)), inputs) or GEMM_TC


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
    if in_optimizer:
        return OPTIMIZER
    return _first(_CPU_RULES, name) or OTHER
