"""The environment card: what machine and software produced a result.

Every record carries it, so every number can be traced to the machine it was measured on.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import subprocess
from contextlib import suppress
from pathlib import Path
from typing import Any

import torch

import mpbench
from mpbench.results.env_card import CpuCard, EnvCard, GpuCard

# CPU flags that decide whether 16-bit math has a fast path on a CPU.
CPU_16BIT_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_fp16", "amx_tile")


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_card() -> CpuCard:
    flags: set[str] = set()
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
    capability = torch.backends.cpu.get_cpu_capability()
    fast_bf16 = bool({"avx512_bf16", "amx_bf16"} & flags)
    fast_fp16 = bool({"avx512_fp16", "amx_fp16"} & flags)
    return CpuCard(
        model=model,
        arch=platform.machine(),
        logical_cores=os.cpu_count(),
        torch_threads=torch.get_num_threads(),
        torch_cpu_capability=capability,
        isa_flags=sorted(f for f in CPU_16BIT_FLAGS if f in flags),
        fast_bf16=fast_bf16,
        fast_fp16=fast_fp16,
        isa_env_overrides={
            k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA") if k in os.environ
        },
    )


def cpu_16bit_note(cpu: CpuCard) -> str:
    """One sentence that explains what this CPU's ISA means for 16-bit speed."""
    bf16 = (
        "bf16 matmuls have a native path (avx512_bf16/AMX), so bf16 can beat fp32"
        if cpu.fast_bf16 and not cpu.isa_env_overrides
        else "bf16 has no native path here (no avx512_bf16/AMX), so bf16 is emulated and slower than fp32"
    )
    fp16 = (
        "fp16 has a native path (avx512_fp16/AMX-FP16)"
        if cpu.fast_fp16
        else "fp16 has no fast CPU path and runs many times slower than fp32"
    )
    return f"CPU {cpu.torch_cpu_capability}: {bf16}; {fp16}. No tensor cores on a CPU."


def nvml_handle(nvml: Any, cuda_index: int) -> tuple[Any, str]:
    """(NVML handle, how it was matched) of torch's CUDA device `cuda_index`.

    torch numbers the devices CUDA_VISIBLE_DEVICES lets it see; NVML numbers all of them,
    so index 0 is the wrong GPU under CUDA_VISIBLE_DEVICES=3. First by UUID: torch's
    `str(props.uuid)` is the bare 8-4-4-4-12 hex (torch/csrc/cuda/Module.cpp), NVML's
    nvmlDeviceGetHandleByUUID wants it with the "GPU-" prefix nvmlDeviceGetUUID prints.
    Then torch's own CUDA_VISIBLE_DEVICES parser (a private helper); then the plain index.
    """
    with suppress(Exception):
        uuid = str(torch.cuda.get_device_properties(cuda_index).uuid)
        if uuid and not uuid.startswith(("GPU-", "MIG-")):
            uuid = f"GPU-{uuid}"
        return nvml.nvmlDeviceGetHandleByUUID(uuid), "uuid"
    with suppress(Exception):
        index = torch.cuda._get_nvml_device_index(cuda_index)
        return nvml.nvmlDeviceGetHandleByIndex(index), "CUDA_VISIBLE_DEVICES"
    return nvml.nvmlDeviceGetHandleByIndex(cuda_index), "index (unmapped)"


def gpu_card(index: int | None = None) -> GpuCard | None:
    """The card of torch's CUDA device `index` (default: the current device)."""
    if not torch.cuda.is_available():
        return None
    if index is None:
        index = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    major, minor = props.major, props.minor
    card: dict[str, Any] = {
        "name": props.name,
        "capability": f"{major}.{minor}",
        "memory_bytes": props.total_memory,
        "multiprocessors": props.multi_processor_count,
        "count": torch.cuda.device_count(),
        "torch_index": index,
        "tensor_cores": {
            "fp16": major >= 7,
            "tf32": major >= 8,
            "bf16": major >= 8,
            "fp8": (major, minor) >= (8, 9),
            "mxfp8": major >= 10,
        },
    }
    card.update(nvml_card(index))
    return GpuCard.model_validate(card)


def nvml_card(index: int, nvml: Any = None) -> dict[str, Any]:
    try:
        if nvml is None:
            import pynvml

            nvml = pynvml
        nvml.nvmlInit()
        try:
            handle, how = nvml_handle(nvml, index)
            return {
                "driver": nvml.nvmlSystemGetDriverVersion(),
                "nvml_name": nvml.nvmlDeviceGetName(handle),
                "nvml_uuid": nvml.nvmlDeviceGetUUID(handle),
                "nvml_matched_by": how,
                "power_limit_w": nvml.nvmlDeviceGetPowerManagementLimit(handle) / 1000.0,
                "max_sm_clock_mhz": nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_SM),
            }
        finally:
            nvml.nvmlShutdown()
    except Exception as exc:  # NVML missing or refused: the card says so
        return {"driver": None, "nvml_error": str(exc)}


def git_commit(path: Path | None = None) -> str | None:
    """The commit of the mpbench checkout (None when installed from a wheel)."""
    root = path or Path(mpbench.__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment_card() -> EnvCard:
    """This machine's card (what records, bench results and the torchrun ranks carry; turned
    into JSON only where it is written)."""
    return EnvCard(
        hostname=socket.gethostname(),
        os=platform.platform(),
        python=platform.python_version(),
        mpbench=mpbench.__version__,
        mpbench_commit=git_commit(),
        torch=torch.__version__,
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        transformer_engine=package_version("transformer-engine") or package_version("transformer_engine"),
        torchao=package_version("torchao"),
        nvidia_ml_py=package_version("nvidia-ml-py"),
        cpu=cpu_card(),
        gpu=gpu_card(),
    )


def fairness_facts(card: EnvCard, device_kind: str) -> dict[str, str | None]:
    """What must be the same on every node of one launch for its numbers to compare: the
    software that computes (torch, CUDA, TransformerEngine, torchao, mpbench) and the
    hardware it runs on (GPU model and driver on a GPU run, the CPU model on a CPU run)."""
    facts: dict[str, Any] = card.software(("torch", "cuda", "transformer_engine", "torchao",
                                            "mpbench"))
    if device_kind == "cuda":
        facts.update({"gpu": card.gpu.name if card.gpu else None,
                      "driver": card.gpu.driver if card.gpu else None})
    else:
        facts["cpu"] = card.cpu.model
    return {k: None if v is None else str(v) for k, v in facts.items()}
