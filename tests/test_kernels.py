"""Kernel and operator classification on real names (from cuBLAS, CUTLASS, cuDNN, PyTorch,
TransformerEngine and NCCL kernels as they appear in torch.profiler / Nsight traces), and on
the corpus of public traces of real GPU runs (tests/data/kernel_traces, sources in each file)."""

from __future__ import annotations

import pytest
from kernel_corpus import CORPUS_DIR, Trace, corpus

from mpbench.profilers import kernel_rules as k
from mpbench.profilers.kernel_names import kernel_identity
from mpbench.profilers.profile_summary import Timed, summarize, uses_tensor_cores
from mpbench.report.sections_kernels import coverage_notes
from mpbench.results.payloads import KernelSummary, TensorCoreResult

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
    ("implicit_convolve_sgemm", k.CONV_SIMT),  # cuDNN FP32 convolution on CUDA cores
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
    ("Memset (Device)", k.COPY),
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
        Timed("nvjet_tst_a", 50.0, k.GEMM_BF16), Timed("nvjet_tst_a", 10.0, k.GEMM_BF16),
        Timed("flash_fwd_kernel", 20.0, k.ATTENTION),
        Timed("ampere_sgemm_128x64_tn", 15.0, k.GEMM_SIMT),
        Timed("vectorized_elementwise_kernel", 5.0, k.ELEMENTWISE),
    ]
    out = summarize(items, k.GPU_BUCKETS, top=3)
    assert out.total_time_us == pytest.approx(100.0)
    assert out.buckets[k.GEMM_BF16] == pytest.approx(0.60)
    assert out.buckets[k.GEMM_SIMT] == pytest.approx(0.15)
    assert out.buckets[k.OTHER] == 0.0
    assert sum(out.buckets.values()) == pytest.approx(1.0)
    assert out.tensor_core_share == pytest.approx(0.80)  # bf16 GEMM + attention, not sgemm
    assert [t.name for t in out.top_kernels] == [
        "nvjet_tst_a", "flash_fwd_kernel", "ampere_sgemm_128x64_tn"]
    assert out.top_kernels[0].time_us == pytest.approx(60.0)  # same name merged
    assert out.top_kernels[0].share == pytest.approx(0.60)


def test_fp32_attention_runs_on_tensor_cores_from_sm80() -> None:
    """torch's mem-efficient f32 kernels are 3xTF32 tensor-core GEMMs on arch tags >= 80."""
    f32 = Timed("fmha_cutlassF_f32_aligned_64x64_rf_sm80", 30.0, k.ATTENTION)
    bwd = Timed("fmha_cutlassB_f32_aligned_64x64_k64_sm80", 30.0, k.ATTENTION)
    old = Timed("fmha_cutlassF_f32_aligned_64x64_rf_sm75", 30.0, k.ATTENTION)
    bf16 = Timed("fmha_cutlassF_bf16_aligned_64x128_rf_sm80", 10.0, k.ATTENTION)
    assert k.classify_kernel(f32.name) == k.ATTENTION
    assert uses_tensor_cores(f32) and uses_tensor_cores(bwd) and uses_tensor_cores(bf16)
    assert not uses_tensor_cores(old)  # Turing: SIMT fallback
    assert summarize([f32, bf16], k.GPU_BUCKETS).tensor_core_share == pytest.approx(1.0)
    assert summarize([old, bf16], k.GPU_BUCKETS).tensor_core_share == pytest.approx(0.25)
    untagged = Timed("fmha_f32_kernel", 30.0, k.ATTENTION)  # no arch tag: the device decides
    assert uses_tensor_cores(untagged, sm=90) and not uses_tensor_cores(untagged, sm=70)
    assert not uses_tensor_cores(untagged)


def test_summarize_of_nothing_is_all_zero() -> None:
    out = summarize([], k.CPU_BUCKETS)
    assert out.total_time_us == 0.0 and out.top_kernels == []
    assert set(out.buckets) == set(k.CPU_BUCKETS) and not any(out.buckets.values())


TRACES = corpus()


def _summary(trace: Trace, classify: bool) -> KernelSummary:
    items = [Timed(r.name, r.time_us, k.classify_kernel(r.name) if classify else r.bucket)
             for r in trace.rows]
    return summarize(items, k.GPU_BUCKETS, sm=trace.sm)


def test_the_corpus_covers_the_gpus_and_libraries_it_claims() -> None:
    gpus = {t.header["gpu"].split(";")[0] for t in TRACES}
    sms = {t.sm for t in TRACES}
    assert {70, 80, 90, 100} <= sms, sms  # Volta, Ampere, Hopper, Blackwell
    names = " ".join(r.name for t in TRACES for r in t.rows)
    for library_mark in ("nvjet_", "sm90_xmma_gemm", "cutlass_80_tensorop", "scudnn", "bn_fw_tr",
                         "flash_fwd_kernel", "fmhaSm100a", "triton_", "nccl", "bmm_MxE4m3",
                         "split_embedding", "Memcpy", "gcgemm"):
        assert library_mark in names, library_mark
    assert len(gpus) >= 5


@pytest.mark.parametrize("trace", TRACES, ids=[t.path.stem for t in TRACES])
def test_corpus_file_names_its_source(trace: Trace) -> None:
    for key in ("source", "commit", "gpu", "sm", "workload"):
        assert trace.header.get(key), f"{trace.path.name}: header {key!r} missing"
    assert len(trace.header["commit"]) == 40 and trace.header["source"].startswith("github.com/")
    assert trace.path.stat().st_size < 1_000_000
    assert trace.rows and all(r.bucket in (*k.GPU_BUCKETS, k.COPY) for r in trace.rows)
    assert len({r.name for r in trace.rows}) == len(trace.rows)  # one row per name


@pytest.mark.parametrize("trace", TRACES, ids=[t.path.stem for t in TRACES])
def test_tensor_core_share_and_buckets_match_the_names_reading(trace: Trace) -> None:
    """Per trace: the tensor-core share within 2 points and every bucket within 5 points of
    the shares the hand-written expected buckets give."""
    got, want = _summary(trace, True), _summary(trace, False)
    assert got.tensor_core_share == pytest.approx(want.tensor_core_share, abs=0.02)
    for bucket in k.GPU_BUCKETS:
        assert got.buckets[bucket] == pytest.approx(want.buckets[bucket], abs=0.05), bucket
    assert got.copy_time_us == pytest.approx(want.copy_time_us)
    assert got.total_time_us == pytest.approx(want.total_time_us)


EXPECTED_SHARES = {  # tensor-core share of kernel time from the hand-written buckets, rounded
    "b200_vllm_moe": 0.597,  # MXFP4 x MXFP8 MoE GEMMs: 14.7% before block-scaled bmm_ was a GEMM
    "a100_dlrm_fp16": 0.090,  # fp16 embedding kernels are gathers, not fp16 GEMMs (23.6% before)
    "a100_alexnet": 0.170,  # memcpy out of the denominator (3.7% with it), gcgemm on CUDA cores
    "v100_resnet50": 0.0,  # Volta FP32 training: scudnn and sgemm, no tensor cores at all
}


@pytest.mark.parametrize(("stem", "share"), EXPECTED_SHARES.items())
def test_shares_the_issue_found_wrong(stem: str, share: float) -> None:
    trace = next(t for t in TRACES if t.path.stem == stem)
    assert _summary(trace, True).tensor_core_share == pytest.approx(share, abs=0.0015)


def test_corpus_dir_has_only_corpus_files() -> None:
    assert {p.suffix for p in CORPUS_DIR.iterdir()} == {".tsv"}


@pytest.mark.parametrize(("name", "own"), [
    ("void at::native::vectorized_elementwise_kernel<4, at::native::GeluCUDAKernelImpl("
     "at::TensorIteratorBase&)::{lambda()#1}, std::array<char*, 2ul> >(int, std::array<char*, 2ul>)",
     "vectorized_elementwise_kernel"),
    ("std::enable_if<(((8)>(0)))&&vllm::_typeConvert<c10::BFloat16>::exists, void>::type "
     "vllm::fused_add_rms_norm_kernel<c10::BFloat16, 8>(c10::BFloat16*, long)",
     "fused_add_rms_norm_kernel"),
    ("void cutlass::Kernel2<cutlass_80_tensorop_bf16_s16816gemm_relu_bf16_64x64_64x6_tn_align8>("
     "cutlass_80_tensorop_bf16_s16816gemm_relu_bf16_64x64_64x6_tn_align8::Params)",
     "Kernel2 cutlass_80_tensorop_bf16_s16816gemm_relu_bf16_64x64_64x6_tn_align8"),
    ("void cutlass::device_kernel<flash::enable_sm90_or_later<flash::FlashAttnFwdSm90<flash::"
     "CollectiveMainloopFwdSm90<2, cute::tuple<cute::C<1> >, 128, cutlass::bfloat16_t> > > >("
     "flash::enable_sm90_or_later<>::Params)", "device_kernel enable_sm90_or_later FlashAttnFwdSm90"),
    ("std::enable_if<!(false), void>::type internal::gemvx::kernel<int, int, float>(int)",
     "gemvx::kernel"),
    ("void transformer_engine::normalization::rmsnorm_fwd_general_kernel<transformer_engine::nor",
     "rmsnorm_fwd_general_kernel"),  # stored names are cut at 300 characters
    ("ncclDevKernel_AllReduce_Sum_f32_RING_LL(ncclDevKernelArgsStorage<4096ul>)",
     "ncclDevKernel_AllReduce_Sum_f32_RING_LL"),
])
def test_kernel_identity_is_the_functions_own_name(name: str, own: str) -> None:
    assert kernel_identity(name) == own


LIBRARY_KERNELS = [
    # FlashAttention 2 (csrc/flash_attn/src/flash_bwd_launch_template.h; torch vendors it
    # as pytorch_flash::): the dot(dO, O) and dQ conversion kernels are memory-bound helpers
    ("void pytorch_flash::flash_bwd_dot_do_o_kernel<true, pytorch_flash::Flash_bwd_kernel_traits"
     "<128, 64, 128, 8, 2, 4, 2, false, false, cutlass::bfloat16_t> >(pytorch_flash::"
     "Flash_bwd_params)", k.ELEMENTWISE),
    ("void flash_bwd_convert_dq_kernel<Flash_bwd_kernel_traits<64, 128, 128, 8, 4, 4, 4, false, "
     "false, cutlass::half_t> >(Flash_bwd_params, int)", k.ELEMENTWISE),
    ("void pytorch_flash::flash_bwd_dq_dk_dv_loop_seqk_parallel_kernel<pytorch_flash::"
     "Flash_bwd_kernel_traits<64, 128, 128, 8, 4, 4, 4, false, false, cutlass::bfloat16_t>, "
     "false, false, false, false, false, false>(pytorch_flash::Flash_bwd_params)", k.ATTENTION),
    ("void flash_fwd_splitkv_combine_kernel<Flash_fwd_kernel_traits<128, 64, 128, 4, false, "
     "false, cutlass::half_t>, 4, 4, false>(Flash_fwd_params)", k.ELEMENTWISE),
    # FlashAttention 3 (hopper/): the main loops are attention, pre/post-processing is not
    ("void cutlass::device_kernel<flash::enable_sm90_or_later<flash::FlashAttnBwdSm90<flash::"
     "CollectiveMainloopBwdSm90<2, cutlass::bfloat16_t, float> > > >(flash::Params)", k.ATTENTION),
    ("void cutlass::device_kernel<flash::FlashAttnBwdPreprocess<cute::tuple<cute::C<64> >, "
     "cutlass::bfloat16_t, float, cutlass::arch::Sm90, true, false> >(flash::Params)",
     k.ELEMENTWISE),
    ("void cutlass::device_kernel<flash::FlashAttnBwdPostprocessConvertdQ<cute::tuple<cute::C<64> >"
     ", cutlass::bfloat16_t, float, cutlass::arch::Sm90, 256> >(flash::Params)", k.ELEMENTWISE),
    # vLLM / FlashInfer: namespaces and helper names are not attention
    ("void vllm::reshape_and_cache_flash_kernel<__nv_bfloat16, __nv_bfloat16, (vllm::"
     "Fp8KVCacheDataType)0>(__nv_bfloat16 const*, __nv_bfloat16 const*, long)", k.ELEMENTWISE),
    ("void tensorrt_llm::kernels::quantize_with_block_size<(tensorrt_llm::"
     "BlockScaleQuantizationType)2, __nv_bfloat16, 32, true>(int, int, flashinfer::"
     "QuantizationSFLayout)", k.FP8_CAST),
    # FlashInfer: its attention kernels say so only by their own names, not by "flash"
    ("void flashinfer::BatchPrefillWithPagedKVCacheKernel<flashinfer::KernelTraits<(flashinfer::"
     "MaskMode)1, 128u, 2u, 4u, 8u, 8u, 1u, 4u, (flashinfer::PosEncodingMode)0, __nv_bfloat16, "
     "__nv_bfloat16, __nv_bfloat16, float, int> >(flashinfer::BatchPrefillPagedParams)",
     k.ATTENTION),
    ("void flashinfer::BatchDecodeWithPagedKVCacheKernel<(flashinfer::PosEncodingMode)0, 2u, 4u, "
     "8u, 16u, 1u, 8u, flashinfer::DefaultAttention<false, false, false, false>, "
     "flashinfer::BatchDecodeParams>(flashinfer::BatchDecodeParams)", k.ATTENTION),
    ("void flashinfer::MergeStatesKernel<8u, 16u, 8u, 8u, __nv_bfloat16, __nv_bfloat16>("
     "__nv_bfloat16*, float*, __nv_bfloat16*, float*, unsigned int, unsigned int)", k.ELEMENTWISE),
    ("void flashinfer::trtllm_allreduce_fusion::allreduce_fusion_kernel_oneshot_lamport<"
     "__nv_bfloat16, 8, false>(flashinfer::trtllm_allreduce_fusion::AllReduceFusionParams)",
     k.COMMUNICATION),
    ("void vllm::paged_attention_v2_reduce_kernel<__nv_bfloat16, 128, 128, 512>(__nv_bfloat16*, "
     "float const*, float const*, __nv_bfloat16 const*, int const*, int)", k.ELEMENTWISE),
    # fbgemm (DLRM): embedding kernels with c10::Half arguments are gathers, not fp16 GEMMs
    ("void split_embedding_codegen_forward_unweighted_kernel<c10::Half, c10::Half, float, false, "
     "long, 2ul, 32ul>(at::GenericPackedTensorAccessor<c10::Half, 1ul>, fbgemm_gpu::FixedDivisor)",
     k.ELEMENTWISE),
    # TRT-LLM gen Blackwell batched GEMMs: bmm_<out>_<A><B>_<acc>
    ("bmm_MxE4m3_MxE2m1MxE4m3_Fp32_t128x16x256u2_s3_et128x16_m128x16x32_cga1x1x1_16dp256b_rM_TN_"
     "transOut_schedP2x1x2x3_biasM_bN_tma_tmaOpt_clmp_swiGlu_dynBatch_sm100f", k.GEMM_FP8),
    ("bmm_Bfloat16_MxE2m1MxE4m3_Fp32_t128x16x256u2_s3_et128x16_m128x16x32_cga1x1x1_16dp256b_rM_"
     "TN_transOut_schedP2x1x2x3_biasM_bN_tmaOpt_clmp_dynBatch_sm100f", k.GEMM_FP8),
    ("bmm_E2m1_E2m1E2m1_Fp32_t128x64x256_s6_et128x64_m128x64x64_cga1x1x1_16dp256b_TN_transOut_"
     "schedS_bN_ldgsts_tmaOpt_clmp_swiGlu_dynBatch_sm100a", k.GEMM_FP4),
    ("nvjet_sm100_tst_64x16_64x16_2x4_2cta_h_bz_splitK_TNT", k.GEMM_BF16),
    # vLLM/SGLang MoE: the Triton expert GEMM and its routing helpers
    ("fused_moe_kernel", k.GEMM_TC),
    ("void vllm::moe::moe_align_block_size_kernel<int>(int const*, int*, int*, int, int)",
     k.ELEMENTWISE),
    # complex GEMMs of cuDNN FFT convolutions: FP32 on CUDA cores
    ("ampere_gcgemm_64x64_nt", k.GEMM_SIMT),
    ("volta_cgemm_32x32_tn", k.GEMM_SIMT),
    ("volta_gcgemm_32x32_nt", k.GEMM_SIMT),
    # cuDNN convolution, batch norm and layout kernels
    ("cudnn_ampere_scudnn_128x64_relu_xregs_large_nn_v1", k.CONV_SIMT),
    ("void cudnn::detail::dgrad_engine<float, 512, 6, 5, 3, 3, 3, false>(int, int, int, float "
     "const*, int, float const*, int, float*, kernel_grad_params)", k.CONV_SIMT),
    ("void cudnn::cnn::wgrad_alg0_engine<float, 128, 6, 7, 3, 3, 5, false, 512>(int, int, int, "
     "float const*, int, float*, float const*, kernel_grad_params)", k.CONV_SIMT),
    ("sm80_xmma_fprop_implicit_gemm_indexed_tf32f32_tf32f32_f32_nhwckrsc_nchw_tilesize128x128x16"
     "_stage4_warpsize2x2x1_g1_tensor16x8x8_alignc4_execute_kernel_cudnn", k.CONV_TC),
    ("void cutlass__5x_cudnn::Kernel<cutlass_tensorop_bf16_s16816fprop_optimized_bf16_256x64_32x4"
     "_nhwc_align8>(cutlass_tensorop_bf16_s16816fprop_optimized_bf16_256x64_32x4_nhwc_align8::"
     "Params)", k.CONV_TC),
    ("void cudnn::bn_bw_1C11_kernel_new<float, float, float2, 128, true, 1>(float, float, float, "
     "float, cudnnTensorStruct, float const*)", k.NORMALIZATION),
    ("void cudnn::ops::nchwToNhwcKernel<float, float, float, false, true, (cudnnKernelDataType_t)2>"
     "(cudnn::ops::nchw2nhwc_params_t<float>, float const*, float*)", k.ELEMENTWISE),
    # Inductor: templates are matmuls (or flex attention, convolutions); pointwise kernels that
    # mention addmm only fuse its epilogue
    ("triton_tem_fused_mm_0", k.GEMM_TC),
    ("triton_tem_fused__to_copy_addmm_gelu_t_view_9", k.GEMM_TC),
    ("triton_tem_fused_bmm_7", k.GEMM_TC),
    ("triton_tem_fused_flex_attention_backward_split_transpose_3", k.ATTENTION),
    ("triton_tem_fused__to_copy_convolution_repeat_unsqueeze_view_2", k.CONV_TC),
    ("triton_poi_fused_addmm_gelu_view_15", k.ELEMENTWISE),
    ("matmul_kernel", k.GEMM_TC),  # Triton's tutorial matmul, as user code names it
    ("matmul_kernel_persistent", k.GEMM_TC),
    ("_kernel_matmul_fp8_row", k.GEMM_FP8),  # fbgemm's Triton FP8 row-wise GEMM
    ("triton_red_fused__unsafe_view_add_addmm_mul_native_layer_norm_split_unsqueeze_19",
     k.NORMALIZATION),
    ("triton_poi_fused_add_cos_sin_0", k.ELEMENTWISE),
    # PyTorch elementwise kernels: {lambda()#N} in the template arguments is not LAMB
    ("void at::native::vectorized_elementwise_kernel<4, at::native::(anonymous namespace)::"
     "silu_kernel(at::TensorIteratorBase&)::{lambda()#1}::operator()() const::{lambda()#6}::"
     "operator()() const::{lambda(c10::BFloat16)#1}, std::array<char*, 2ul> >(int, std::array"
     "<char*, 2ul>)", k.ELEMENTWISE),
    ("void at::native::elementwise_kernel<128, 4, at::native::gpu_kernel_impl_nocast<at::native::"
     "direct_copy_kernel_cuda(at::TensorIteratorBase&)::{lambda()#3}::operator()() const::"
     "{lambda()#7}::operator()() const::{lambda(float)#1}> >(int)", k.ELEMENTWISE),
    ("void (anonymous namespace)::multimem_all_reduce_kernel<c10::BFloat16, 16>(c10::BFloat16*, "
     "unsigned long, unsigned int**)", k.COMMUNICATION),
    ("Memcpy HtoD (Pageable -> Device)", k.COPY),
    ("triton__0d1d2d3d", k.UNCLASSIFIED),  # the name says nothing about the work
    ("some_new_library_kernel<float>(float*)", k.UNCLASSIFIED),
    ("", k.UNCLASSIFIED),
]


@pytest.mark.parametrize(("name", "bucket"), LIBRARY_KERNELS)
def test_library_kernel_names(name: str, bucket: str) -> None:
    assert k.classify_kernel(name) == bucket


def test_copies_are_reported_apart_and_unknown_names_are_listed() -> None:
    items = [Timed(n, t, k.classify_kernel(n)) for n, t in [
        ("nvjet_tst_128x128_64x4_1x2_h_bz_coopA", 30.0),
        ("Memcpy HtoD (Pageable -> Device)", 500.0), ("Memset (Device)", 20.0),
        ("mystery_kernel<float>(float*)", 8.0), ("other_mystery(int)", 2.0),
        ("mystery_kernel<float>(float*)", 10.0),
        ("void at::native::vectorized_elementwise_kernel<4, at::native::FillFunctor<float> >(int)",
         50.0),
    ]]
    out = summarize(items, k.GPU_BUCKETS, unclassified_top=1)
    assert out.total_time_us == pytest.approx(100.0)  # kernels only
    assert out.copy_time_us == pytest.approx(520.0)
    assert out.tensor_core_share == pytest.approx(0.30)  # not 30 / 620
    assert sum(out.buckets.values()) == pytest.approx(1.0)
    assert out.unclassified_share == pytest.approx(0.20)
    assert [(t.name, t.time_us) for t in out.unclassified_top] == [
        ("mystery_kernel<float>(float*)", 18.0)]
    assert out.unclassified_top[0].share == pytest.approx(0.18)


def test_a_cpu_summary_has_no_unclassified_or_copy_fields() -> None:
    out = summarize([Timed("aten::mm", 5.0, k.MATMUL)], k.CPU_BUCKETS)
    assert not {"unclassified_share", "copy_time_us"} & out.model_fields_set  # GPU-only fields


def test_the_report_names_the_unclassified_time_and_the_copies() -> None:
    items = [Timed(n, t, k.classify_kernel(n)) for n, t in [
        ("nvjet_tst_128x128_64x4_1x2_h_bz_coopA", 90.0), ("mystery_kernel<float>(float*)", 10.0),
        ("Memcpy HtoD (Pageable -> Device)", 40.0)]]
    summary = summarize(items, k.GPU_BUCKETS)
    prof = TensorCoreResult(**{f: getattr(summary, f) for f in summary.model_fields_set},
                            device_kind="cuda", steps=3)
    notes = [n.text for n in coverage_notes("gpt-bf16", prof)]
    assert notes == [
        "gpt-bf16: unclassified: 10.0% of kernel time, top names: mystery_kernel<float>(float*) "
        "(10.0%)",
        "gpt-bf16: memcpy/memset (copy engine): 40 µs, outside the shares (kernel time 100 µs)"]


def test_records_stored_before_the_unclassified_share_still_load() -> None:
    old = {"buckets": {"gemm_bf16": 0.6, "other": 0.4}, "bucket_time_us": {"gemm_bf16": 60.0,
           "other": 40.0}, "tensor_core_share": 0.6, "total_time_us": 100.0, "steps": 3,
           "device_kind": "cuda", "top_kernels": [{"name": "nvjet_tst_a", "bucket": "gemm_bf16",
                                                   "time_us": 60.0, "share": 0.6}]}
    prof = TensorCoreResult.model_validate(old)
    assert prof.unclassified_share is None and prof.copy_time_us is None
    assert prof.unclassified_top == [] and coverage_notes("old", prof) == []
