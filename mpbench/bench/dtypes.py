"""Dtype names of the micro-benchmarks and what each needs from the device."""

from __future__ import annotations

from typing import Literal

import torch

DtypeKey = Literal["fp32", "tf32", "fp16", "bf16", "fp8"]
DTYPE_KEYS: tuple[DtypeKey, ...] = ("fp32", "tf32", "fp16", "bf16", "fp8")

# Names a caller may use for a dtype: recipe families, torch names, the peak table's keys.
_ALIASES: dict[str, DtypeKey] = {
    "fp32": "fp32", "float32": "fp32", "float": "fp32",
    "tf32": "tf32",
    "fp16": "fp16", "float16": "fp16", "half": "fp16",
    "bf16": "bf16", "bfloat16": "bf16",
    "fp8": "fp8", "float8": "fp8", "float8_e4m3fn": "fp8", "e4m3": "fp8",
}

# Storage dtype of the operands (tf32 stores fp32; fp8 operands are e4m3 with a bf16 output).
STORAGE: dict[DtypeKey, torch.dtype] = {
    "fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16,
    "bf16": torch.bfloat16, "fp8": torch.float8_e4m3fn,
}

# The peak table in mpbench.hardware names dtypes by these keys.
PEAK_KEY: dict[DtypeKey, str] = {
    "fp32": "float32", "tf32": "tf32", "fp16": "float16", "bf16": "bfloat16", "fp8": "float8",
}


def dtype_key(dtype: str | torch.dtype) -> DtypeKey:
    """Normalise 'bfloat16', torch.bfloat16, 'bf16', ... to one benchmark key."""
    name = str(dtype).removeprefix("torch.").lower()
    if name not in _ALIASES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPE_KEYS)}")
    return _ALIASES[name]


def skip_reason(key: DtypeKey, device: torch.device) -> str | None:
    """Why `key` cannot be measured on `device` at all (None: it can)."""
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

    return str(cpu_card()["model"])
