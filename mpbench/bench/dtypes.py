"""What each dtype of the one vocabulary (mpbench.dtypes) needs to be micro-benchmarked."""

from __future__ import annotations

import torch

from mpbench.dtypes import DTYPE_KEYS, DtypeKey, dtype_key

# Storage dtype of the operands (tf32 stores fp32; fp8 operands are e4m3 with a bf16 output).
# fp4 has no torch matmul to time: it is skipped with its reason.
STORAGE: dict[str, torch.dtype] = {
    "fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16,
    "bf16": torch.bfloat16, "fp8": torch.float8_e4m3fn,
}


def skip_reason(key: DtypeKey, device: torch.device) -> str | None:
    """Why `key` cannot be measured on `device` at all (None: it can)."""
    if key not in STORAGE:
        return (f"{key} has no GEMM path in mpbench's micro-benchmarks (torch offers no {key} "
                "matmul to time); its runs get no measured ceiling")
    if key == "tf32" and device.type != "cuda":
        return "TF32 is a CUDA tensor-core mode; a CPU has no TF32 matmul"
    if key == "tf32" and torch.cuda.get_device_capability(device) < (8, 0):
        return "TF32 needs compute capability >= 8.0 (Ampere)"
    if key == "fp8" and device.type == "cuda" and torch.cuda.get_device_capability(device) < (8, 9):
        cc = ".".join(map(str, torch.cuda.get_device_capability(device)))
        return f"FP8 GEMMs (torch._scaled_mm) need compute capability >= 8.9; this GPU is {cc}"
    return None


def numerics_only(key: DtypeKey, device: torch.device) -> bool:
    """FP8 on a CPU runs through a reference path: its numbers are right, its speed means nothing."""
    return key == "fp8" and device.type != "cuda"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    from mpbench.results.env import cpu_card

    return cpu_card().model


__all__ = ["DTYPE_KEYS", "STORAGE", "DtypeKey", "device_name", "dtype_key", "numerics_only",
           "skip_reason"]
