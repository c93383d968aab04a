"""Issue 14, peaks: exact GPU names, dense values, a datasheet per entry, unknown GPUs say so."""

from __future__ import annotations

import pytest

from mpbench.mfu import PEAKS, gpu_peaks, peak_tflops, unknown_peak_note

pytestmark = pytest.mark.unit

COVERED = [  # the names torch.cuda.get_device_name() reports for the GPUs users have
    "Tesla V100-SXM2-16GB", "Tesla V100-PCIE-32GB", "NVIDIA A100-SXM4-40GB",
    "NVIDIA A100-SXM4-80GB", "NVIDIA A100-PCIE-40GB", "NVIDIA A100 80GB PCIe", "NVIDIA A10",
    "NVIDIA L4", "NVIDIA L40S", "NVIDIA GeForce RTX 4090", "NVIDIA H100 80GB HBM3",
    "NVIDIA H100 PCIe", "NVIDIA H100 NVL", "NVIDIA H200", "NVIDIA H200 NVL",
    "NVIDIA GH200 480GB", "NVIDIA B200", "NVIDIA B300 SXM6 AC", "NVIDIA GB200",
    "AMD Instinct MI300X", "AMD Instinct MI300X VF",
]


@pytest.mark.parametrize("name", COVERED)
def test_every_gpu_users_have_is_covered_with_a_datasheet(name: str) -> None:
    table = gpu_peaks(name)
    assert table is not None
    assert "datasheet" in table.source or "whitepaper" in table.source
    assert "dense" in table.source  # and says whether its figures were halved from sparse
    assert {"fp32", "fp16"} <= set(table.tflops)


def test_nvl_parts_do_not_get_sxm_peaks() -> None:
    sxm = peak_tflops("NVIDIA H100 80GB HBM3", "bfloat16")
    assert sxm is not None and sxm[0] == pytest.approx(989.4)
    for nvl in ("NVIDIA H100 NVL", "NVIDIA H200 NVL"):
        found = peak_tflops(nvl, "bfloat16")
        assert found is not None and found[0] == pytest.approx(835.5)
        assert "NVL" in found[1]
    pcie = peak_tflops("NVIDIA H100 PCIe", "float8")
    assert pcie is not None and pcie[0] == pytest.approx(1513.0)


def test_names_match_exactly_not_by_substring() -> None:
    assert gpu_peaks("nvidia  h100 nvl ") is gpu_peaks("NVIDIA H100 NVL")  # case, spacing
    for unknown in ("NVIDIA H100", "NVIDIA H800", "NVIDIA A10G", "NVIDIA H100 NVL 2"):
        assert gpu_peaks(unknown) is None, unknown
        note = unknown_peak_note(unknown, "bfloat16")
        assert "no spec MFU" in note and "measured GEMM ceiling" in note


def test_peaks_are_dense_and_ordered_like_the_hardware() -> None:
    for table in PEAKS:
        t = table.tflops
        assert len(table.names) == len(set(table.names))
        if "tf32" in t:  # dense tensor-core rates: fp16 = 2 x tf32 on every NVIDIA part here
            assert t["fp16"] == pytest.approx(2 * t["tf32"], rel=0.03), table.names
        if "fp8" in t:
            assert t["fp8"] == pytest.approx(2 * t["fp16"], rel=0.03), table.names
    fp8 = peak_tflops("NVIDIA H100 80GB HBM3", "float8")
    assert fp8 is not None and fp8[0] == pytest.approx(1978.9)
    # V100 has no bf16/tf32 tensor cores: no peak, and the note says so
    assert peak_tflops("Tesla V100-SXM2-16GB", "bfloat16") is None
    assert "unknown" in unknown_peak_note("Tesla V100-SXM2-16GB", "bfloat16")


def test_l40s_dense_half_precision_is_the_printed_dense_figure() -> None:
    """L40S datasheet: BF16/FP16 362.05 dense, 733 with sparsity (not 733 / 2 = 366.5)."""
    for dtype in ("bf16", "fp16"):
        found = peak_tflops("NVIDIA L40S", dtype)
        assert found is not None and found[0] == pytest.approx(362.05)
    tf32, fp8 = peak_tflops("NVIDIA L40S", "tf32"), peak_tflops("NVIDIA L40S", "fp8")
    assert tf32 is not None and tf32[0] == pytest.approx(183.0)
    assert fp8 is not None and fp8[0] == pytest.approx(733.0)


def test_b200_tf32_is_half_its_bf16_rate() -> None:
    """HGX B200: TF32 18 PFLOPS sparse over 8 GPUs -> 1,125 dense, half of BF16's 2,250."""
    tf32, bf16 = peak_tflops("NVIDIA B200", "tf32"), peak_tflops("NVIDIA B200", "bf16")
    assert tf32 is not None and bf16 is not None
    assert tf32[0] == pytest.approx(1125.0) and tf32[0] == pytest.approx(bf16[0] / 2)


def test_b300_fp4_is_marked_provisional_where_it_is_shown() -> None:
    table = gpu_peaks("NVIDIA B300")
    assert table is not None and table.provisional == {"fp4"}
    assert "preliminary" in table.source and "provisional" in table.source
    fp4 = peak_tflops("NVIDIA B300", "fp4")
    assert fp4 is not None and fp4[0] == pytest.approx(13125.0)
    assert fp4[1].endswith("[provisional figure]")
    bf16 = peak_tflops("NVIDIA B300", "bf16")
    assert bf16 is not None and "[provisional figure]" not in bf16[1]


def test_an_unknown_dtype_has_no_peak_and_a_note_that_says_why() -> None:
    assert peak_tflops("NVIDIA H100 80GB HBM3", "int4") is None
    assert peak_tflops("NVIDIA H100 80GB HBM3", "float64") is None
    note = unknown_peak_note("NVIDIA H100 80GB HBM3", "int4")
    assert "'int4'" in note and "no spec MFU" in note


def test_mi300x_vf_is_the_mi300x() -> None:
    assert gpu_peaks("AMD Instinct MI300X VF") is gpu_peaks("AMD Instinct MI300X")
    found = peak_tflops("AMD Instinct MI300X VF", "bf16")
    assert found is not None and found[0] == pytest.approx(1307.4)
