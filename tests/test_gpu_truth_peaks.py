"""Issue 14, peaks: exact GPU names, dense values, a datasheet per entry, unknown GPUs say so."""

from __future__ import annotations

import pytest

from mpbench.hardware import PEAKS, gpu_peaks, peak_tflops, unknown_peak_note

pytestmark = pytest.mark.unit

COVERED = [  # the names torch.cuda.get_device_name() reports for the GPUs users have
    "Tesla V100-SXM2-16GB", "Tesla V100-PCIE-32GB", "NVIDIA A100-SXM4-40GB",
    "NVIDIA A100-SXM4-80GB", "NVIDIA A100-PCIE-40GB", "NVIDIA A100 80GB PCIe", "NVIDIA A10",
    "NVIDIA L4", "NVIDIA L40S", "NVIDIA GeForce RTX 4090", "NVIDIA H100 80GB HBM3",
    "NVIDIA H100 PCIe", "NVIDIA H100 NVL", "NVIDIA H200", "NVIDIA H200 NVL",
    "NVIDIA GH200 480GB", "NVIDIA B200", "NVIDIA B300 SXM6 AC", "NVIDIA GB200",
    "AMD Instinct MI300X",
]


@pytest.mark.parametrize("name", COVERED)
def test_every_gpu_users_have_is_covered_with_a_datasheet(name: str) -> None:
    table = gpu_peaks(name)
    assert table is not None
    assert "datasheet" in table.source or "whitepaper" in table.source
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
