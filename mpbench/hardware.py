"""Dense (no sparsity) peak TFLOP/s of known GPUs, per compute dtype, with their sources."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PeakTable:
    match: str
    """Substring of torch.cuda.get_device_name()."""
    tflops: dict[str, float]
    source: str


_HOPPER_SXM = "NVIDIA H100 SXM5 / H200 datasheets (dense)"
PEAKS: tuple[PeakTable, ...] = (
    PeakTable("H200", {"float32": 66.9, "tf32": 494.7, "bfloat16": 989.4, "float16": 989.4,
                       "float8": 1978.9}, _HOPPER_SXM),
    PeakTable("H100 PCIe", {"float32": 51.2, "tf32": 378.0, "bfloat16": 756.0, "float16": 756.0,
                            "float8": 1513.0}, "NVIDIA H100 PCIe datasheet (dense)"),
    PeakTable("H100", {"float32": 66.9, "tf32": 494.7, "bfloat16": 989.4, "float16": 989.4,
                       "float8": 1978.9}, _HOPPER_SXM),
    PeakTable("A100", {"float32": 19.5, "tf32": 156.0, "bfloat16": 312.0, "float16": 312.0},
              "NVIDIA A100 datasheet (dense)"),
)


def peak_tflops(device_name: str, dtype_key: str) -> tuple[float, str] | None:
    """(peak, source) for a GPU name and dtype key, or None when the GPU is unknown."""
    for table in PEAKS:
        if table.match in device_name and dtype_key in table.tflops:
            return table.tflops[dtype_key], table.source
    return None
