"""The buckets kernel time is sorted into (profilers/kernel_rules.py decides which)."""

from __future__ import annotations

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
CPU_BUCKETS = (MATMUL, ATTENTION, NORMALIZATION, OPTIMIZER, OTHER)
