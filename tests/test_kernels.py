"""Kernel and operator classification on real names (from cuBLAS, CUTLASS, cuDNN, PyTorch,
TransformerEngine and NCCL kernels as they appear in torch.profiler / Nsight traces)."""

from __future__ import annotations

import pytest

from mpbench.profilers import kernels as k

pytestmark = pytest.mark.unit

REAL_KERNELS = [
    # Hopper cuBLAS (nvjet): hsh/hss fp16, tst/tss bf16, qq... FP8 inputs, sss_tf32 TF32
    ("nvjet_hsh_256x128_64x4_1x2_h_bz_coopA_NNT", k.GEMM_FP16),
    ("nvjet_sm90_hss_320x128", k.GEMM_FP16),
    ("nvjet_tst_128x128_64x4_1x2_h_bz_coopA", k.GEMM_BF16),
    ("nvjet_sm90_tst_192x192_64x3_2x1_v_bz_coopB_NTN", k.GEMM_BF16),
    ("nvjet_sm90_tss_64x8_64x16_4x1_v_bz_splitK_TNT", k.GEMM_BF16),
    ("nvjet_tst_64x64_64x16_2x1_2cta_v_bz_bias_TNT", k.GEMM_BF16),
    ("nvjet_qqtst_128x256_128x6_2x1_2cta_v_bz_TNT", k.GEMM_FP8),
    ("nvjet_qqtst_112x128_128x7_2x1_v_bz_coopA_algo2_TNN", k.GEMM_FP8),
    ("nvjet_sss_tf32_128x256_TNT", k.GEMM_TF32),
    # cuBLAS xmma: the compute types tell TF32 from strict FP32 (ffma: CUDA cores)
    ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1"
     "_execute_segment_k_off_kernel__5x_cublas", k.GEMM_BF16),
    ("sm80_xmma_gemm_f32f32_tf32f32_f32_nn_n_tilesize32x32x64_stage3_warpsize2x1x2_tensor16x8x8",
     k.GEMM_TF32),
    ("sm90_xmma_gemm_f32f32_tf32f32_f32_nn_n_tilesize128x128x32_cgasize1x1x1", k.GEMM_TF32),
    ("sm80_xmma_gemm_f32f32_f32f32_f32_tn_n_tilesize128x128x8_stage3_warpsize2x2x1_ffma",
     k.GEMM_SIMT),
    ("sm80_xmma_gemm_f16f16", k.GEMM_FP16),
    # CUTLASS and older cuBLAS
    ("void cutlass::Kernel2<cutlass_80_tensorop_bf16_s16816gemm_relu_bf16_64x64_64x6_tn_align8>"
     "(cutlass_80_tensorop_bf16_s16816gemm_relu_bf16_64x64_64x6_tn_align8::Params)", k.GEMM_BF16),
    ("void cutlass::Kernel2<cutlass_80_wmma_tensorop_bf16_s161616gemm_bf16_32x32_128x2_tn_align8>"
     "(cutlass_80_wmma_tensorop_bf16_s161616gemm_bf16_32x32_128x2_tn_align8::Params)", k.GEMM_BF16),
    ("cutlass_80_tensorop_s1688gemm", k.GEMM_TF32),
    ("ampere_sgemm_128x64_tn", k.GEMM_SIMT),
    ("ampere_sgemm_128x128_tn", k.GEMM_SIMT),
    ("volta_sgemm_128x64_nn", k.GEMM_SIMT),
    ("implicit_convolve_sgemm", k.GEMM_SIMT),
    # attention: flash, memory-efficient (xFormers CUTLASS), cuDNN SDPA (names hold "wgmma")
    ("flash_fwd_splitkv_kernel", k.ATTENTION),
    ("flash_fwd_kernel", k.ATTENTION),
    ("flash_bwd_dq_dk_dv_loop_seqk_parallel_kernel", k.ATTENTION),
    ("fmha_cutlassF_bf16_aligned_64x128_rf_sm80", k.ATTENTION),
    ("fmha_cutlassF_f32_aligned_64x64_rf_sm80", k.ATTENTION),
    ("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7_64x128x128_4x", k.ATTENTION),
    ("cudnn_generated_fort_native_sdpa_sm80_flash_fprop_wmma_f16_knob_3_64x64x128_4x1x1_kernel0_0",
     k.ATTENTION),
    ("flash::FlashAttentionForwardSm100", k.ATTENTION),
    # TransformerEngine FP8 work (its norm kernels fuse the cast: they stay normalisation)
    ("void transformer_engine::(anonymous namespace)::amax_kernel<16, true, __nv_bfloat16>"
     "(__nv_bfloat16 const*, float*, unsigned long, unsigned long, float const*)", k.FP8_CAST),
    ("void transformer_engine::(anonymous namespace)::compute_scale_from_amax_kernel"
     "(float const*, float*, float, bool, float, float const*)", k.FP8_CAST),
    ("cast_transpose_general_kernel", k.FP8_CAST),
    ("cast_transpose_optimized_kernel", k.FP8_CAST),
    ("void transformer_engine::normalization::rmsnorm_fwd_general_kernel<transformer_engine::nor",
     k.NORMALIZATION),
    # communication
    ("ncclDevKernel_AllReduce_Sum_f32_RING_LL", k.COMMUNICATION),
    ("ncclDevKernel_AllReduce_Sum_bf16_RING_LL", k.COMMUNICATION),
    # optimizer (fused AdamW, foreach clipping)
    ("void at::native::(anonymous namespace)::multi_tensor_apply_kernel<at::native::(anonymous "
     "namespace)::FusedOptimizerTensorListMetadata<4>, at::native::(anonymous namespace)::"
     "FusedAdamMathFunctor<float, 4, (at::native::ADAM_MODE)1, false>, double*, double, double, "
     "double, double, double, bool, float const*, float const*>", k.OPTIMIZER),
    ("void multi_tensor_apply_kernel<TensorListMetadata<4>, AdamFunctor<float>>(int)", k.OPTIMIZER),
    # normalisation and memory-bound PyTorch kernels
    ("void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<float, float>(int, "
     "float, float const*, float const*, float const*, float*, float*, float*)", k.NORMALIZATION),
    ("void at::native::(anonymous namespace)::GammaBetaBackwardCUDAKernel_32x32<float, float>",
     k.NORMALIZATION),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<float>, "
     "at::detail::Array<char*, 3> >(int, at::native::CUDAFunctor_add<float>, "
     "at::detail::Array<char*, 3>)", k.ELEMENTWISE),
    ("vectorized_gather_kernel", k.ELEMENTWISE),
    ("at::native::reduce_kernel", k.ELEMENTWISE),
    ("void (anonymous namespace)::cunn_SoftMaxForward<4, float, float, float, "
     "(anonymous namespace)::LogSoftMaxForwardEpilogue>(float*, float const*, int)", k.ELEMENTWISE),
    ("Memset (Device)", k.OTHER),
]


@pytest.mark.parametrize(("name", "bucket"), REAL_KERNELS)
def test_real_kernel_names_land_in_their_bucket(name: str, bucket: str) -> None:
    assert k.classify_kernel(name) == bucket


def test_simt_gemm_is_not_tensor_core_work_but_attention_is() -> None:
    assert k.GEMM_SIMT not in k.TENSOR_CORE_BUCKETS
    assert k.ATTENTION in k.TENSOR_CORE_BUCKETS
    assert {k.GEMM_FP8, k.GEMM_BF16, k.GEMM_FP16, k.GEMM_TF32} <= k.TENSOR_CORE_BUCKETS
    assert k.classify_kernel("ampere_sgemm_128x64_tn") not in k.TENSOR_CORE_BUCKETS


@pytest.mark.parametrize(("op", "in_optimizer", "bucket"), [
    ("aten::mm", False, k.MATMUL), ("aten::addmm", False, k.MATMUL),
    ("aten::bmm", False, k.MATMUL), ("aten::linear", False, k.MATMUL),
    ("aten::matmul", False, k.MATMUL), ("aten::_scaled_mm", False, k.MATMUL),
    ("aten::_scaled_dot_product_flash_attention_for_cpu", False, k.ATTENTION),
    ("aten::_scaled_dot_product_flash_attention_for_cpu_backward", False, k.ATTENTION),
    ("aten::native_layer_norm_backward", False, k.NORMALIZATION),
    ("Optimizer.step#AdamW.step", False, k.OPTIMIZER),
    ("aten::_foreach_norm", False, k.OPTIMIZER),
    ("aten::mul_", True, k.OPTIMIZER),
    ("aten::mul_", False, k.OTHER),
    ("aten::gelu_backward", False, k.OTHER),
    ("aten::mma_thing", False, k.OTHER),
])
def test_cpu_ops(op: str, in_optimizer: bool, bucket: str) -> None:
    assert k.classify_cpu_op(op, in_optimizer) == bucket


def test_summarize_shares_top_and_tensor_core_share() -> None:
    items = [
        k.Timed("nvjet_tst_a", 50.0, k.GEMM_BF16), k.Timed("nvjet_tst_a", 10.0, k.GEMM_BF16),
        k.Timed("flash_fwd_kernel", 20.0, k.ATTENTION),
        k.Timed("ampere_sgemm_128x64_tn", 15.0, k.GEMM_SIMT),
        k.Timed("vectorized_elementwise_kernel", 5.0, k.ELEMENTWISE),
    ]
    out = k.summarize(items, k.GPU_BUCKETS, top=3)
    assert out["total_time_us"] == pytest.approx(100.0)
    assert out["buckets"][k.GEMM_BF16] == pytest.approx(0.60)
    assert out["buckets"][k.GEMM_SIMT] == pytest.approx(0.15)
    assert out["buckets"][k.OTHER] == 0.0
    assert sum(out["buckets"].values()) == pytest.approx(1.0)
    assert out["tensor_core_share"] == pytest.approx(0.80)  # bf16 GEMM + attention, not sgemm
    assert [t["name"] for t in out["top_kernels"]] == [
        "nvjet_tst_a", "flash_fwd_kernel", "ampere_sgemm_128x64_tn"]
    assert out["top_kernels"][0]["time_us"] == pytest.approx(60.0)  # same name merged
    assert out["top_kernels"][0]["share"] == pytest.approx(0.60)


def test_fp32_attention_runs_on_tensor_cores_from_sm80() -> None:
    """torch's mem-efficient f32 kernels are 3xTF32 tensor-core GEMMs on arch tags >= 80."""
    f32 = k.Timed("fmha_cutlassF_f32_aligned_64x64_rf_sm80", 30.0, k.ATTENTION)
    bwd = k.Timed("fmha_cutlassB_f32_aligned_64x64_k64_sm80", 30.0, k.ATTENTION)
    old = k.Timed("fmha_cutlassF_f32_aligned_64x64_rf_sm75", 30.0, k.ATTENTION)
    bf16 = k.Timed("fmha_cutlassF_bf16_aligned_64x128_rf_sm80", 10.0, k.ATTENTION)
    assert k.classify_kernel(f32.name) == k.ATTENTION
    assert k.uses_tensor_cores(f32) and k.uses_tensor_cores(bwd) and k.uses_tensor_cores(bf16)
    assert not k.uses_tensor_cores(old)  # Turing: SIMT fallback
    assert k.summarize([f32, bf16], k.GPU_BUCKETS)["tensor_core_share"] == pytest.approx(1.0)
    assert k.summarize([old, bf16], k.GPU_BUCKETS)["tensor_core_share"] == pytest.approx(0.25)
    untagged = k.Timed("fmha_f32_kernel", 30.0, k.ATTENTION)  # no arch tag: the device decides
    assert k.uses_tensor_cores(untagged, sm=90) and not k.uses_tensor_cores(untagged, sm=70)
    assert not k.uses_tensor_cores(untagged)


def test_summarize_of_nothing_is_all_zero() -> None:
    out = k.summarize([], k.CPU_BUCKETS)
    assert out["total_time_us"] == 0.0 and out["top_kernels"] == []
    assert set(out["buckets"]) == set(k.CPU_BUCKETS) and not any(out["buckets"].values())
