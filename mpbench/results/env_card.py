"""The environment card as a typed model (built by results/env.py, stored in every record).

Fields a card of an older mpbench lacks take their defaults; fields a newer card adds are kept
(extra="allow"), so every stored card validates.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Card(BaseModel):
    model_config = ConfigDict(extra="allow")


class CpuCard(_Card):
    model: str = "unknown CPU"
    arch: str = ""
    logical_cores: int | None = None
    torch_threads: int | None = None
    torch_cpu_capability: str | None = None
    """torch.backends.cpu.get_cpu_capability(): DEFAULT, AVX2, AVX512, ..."""
    isa_flags: list[str] = Field(default_factory=list)
    """The 16-bit-relevant flags present (results/env.CPU_16BIT_FLAGS)."""
    fast_bf16: bool = False
    fast_fp16: bool = False
    isa_env_overrides: dict[str, str] = Field(default_factory=dict)
    """ATEN_CPU_CAPABILITY / ONEDNN_MAX_CPU_ISA when set: the ISA was capped by hand."""


class TensorCores(_Card):
    fp16: bool = False
    tf32: bool = False
    bf16: bool = False
    fp8: bool = False
    mxfp8: bool = False


class GpuCard(_Card):
    name: str
    capability: str
    """Compute capability, '9.0'."""
    memory_bytes: int | None = None
    multiprocessors: int | None = None
    count: int | None = None
    torch_index: int | None = None
    tensor_cores: TensorCores = Field(default_factory=TensorCores)
    driver: str | None = None
    nvml_name: str | None = None
    nvml_uuid: str | None = None
    nvml_matched_by: str | None = None
    power_limit_w: float | None = None
    max_sm_clock_mhz: float | None = None
    nvml_error: str | None = None


class EnvCard(_Card):
    hostname: str = ""
    os: str = ""
    python: str = ""
    mpbench: str = ""
    mpbench_commit: str | None = None
    torch: str | None = None
    cuda: str | None = None
    cudnn: int | None = None
    transformer_engine: str | None = None
    torchao: str | None = None
    nvidia_ml_py: str | None = None
    cpu: CpuCard = Field(default_factory=CpuCard)
    gpu: GpuCard | None = None

    def software(self, keys: tuple[str, ...]) -> dict[str, Any]:
        """The named software versions (torch, cuda, ...) as a flat dict."""
        return {k: getattr(self, k, None) for k in keys}

    def capabilities(self, device: str, device_name: str) -> Capabilities:
        """What the run's device (`cuda:0`, `cpu`; `device_name` when the card lacks its
        name) can do for each format."""
        if device.startswith("cuda"):
            gpu = self.gpu
            tc = gpu.tensor_cores if gpu else TensorCores()
            return Capabilities(kind="cuda", name=gpu.name if gpu else device_name,
                                capability=gpu.capability if gpu else None, tensor_cores=tc.fp16,
                                fp16=tc.fp16, bf16=tc.bf16, tf32=tc.tf32, fp8=tc.fp8,
                                mxfp8=tc.mxfp8)
        cpu = self.cpu
        overridden = bool(cpu.isa_env_overrides)
        return Capabilities(kind="cpu", name=cpu.model or device_name,
                            capability=cpu.torch_cpu_capability,
                            fp16=cpu.fast_fp16 and not overridden,
                            bf16=cpu.fast_bf16 and not overridden, isa_flags=list(cpu.isa_flags),
                            isa_env_overrides=dict(cpu.isa_env_overrides))

    def device_name(self, device_kind: str) -> str:
        """What a run on `device_kind` ('cuda' or 'cpu') ran on: the GPU's name on a CUDA run
        with a GPU on the card, else the CPU model."""
        if device_kind == "cuda" and self.gpu is not None:
            return self.gpu.name
        return self.cpu.model


class Capabilities(BaseModel):
    """What the run's device can do for each format (EnvCard.capabilities).

    GPU: tensor-core support by compute capability. CPU: no tensor cores; whether bf16/fp16
    matmuls have a native ISA path (avx512_bf16/AMX) is what decides their speed.
    """

    model_config = ConfigDict(frozen=True)

    kind: str = "cpu"
    """'cuda' or 'cpu'."""
    name: str = "unknown device"
    capability: str | None = None
    """Compute capability on a GPU, torch's CPU capability (AVX512, ...) on a CPU."""
    tensor_cores: bool = False
    fp16: bool = False
    bf16: bool = False
    tf32: bool = False
    fp8: bool = False
    mxfp8: bool = False
    isa_flags: list[str] = Field(default_factory=list)
    isa_env_overrides: dict[str, str] = Field(default_factory=dict)

    def native(self, fmt: str) -> bool:
        """Whether the device has a fast path for `fmt` (fp16, bf16, tf32, fp8, mxfp8)."""
        return bool(getattr(self, fmt, False))
