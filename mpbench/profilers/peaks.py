"""Peak memory, measured one way for the run record, the memory and max_batch profilers:
CUDA allocator statistics, or peak RSS (VmHWM) on a CPU; the bytes behind tensors, each storage
counted once; and the one OOM rule.

One training step (StepMemory): on CUDA the allocator's max_memory_allocated since the last
reset (absolute: it sees every tensor of the process). On a CPU there is no allocator total,
and process RSS carries things a step does not need (lazily loaded libraries, oneDNN kernels
cached for earlier shapes), so the peak is the model state counted from its tensors at step
start plus how far RSS rose above its value at step start (VmHWM after resetting it, Linux).
glibc is asked to return freed pages first (malloc_trim), so the rise is not hidden by reuse
of cached free memory.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from mpbench.results.schema import MemoryStats

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def current_rss_bytes() -> int | None:
    kib = _status_kib("VmRSS")
    return kib * 1024 if kib is not None else None


def trim_heap() -> None:
    """Return glibc's free pages to the OS, so RSS growth is not hidden by reused free memory."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: RSS rises are lower bounds
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def release_memory(device: torch.device) -> None:
    """Give freed memory back before a run, so the next peak starts from a clean floor."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    else:
        trim_heap()


OOM_MARKERS = (
    "out of memory",
    # CUDA runtime via C10_CUDA_CHECK ("CUDA error: out of memory", torch.AcceleratorError),
    # TransformerEngine's NVTE_CHECK_CUDA ("CUDA Error: out of memory")
    "can't allocate memory",
    # c10/core/impl/alloc_cpu.cpp, posix_memalign failing: "DefaultCPUAllocator: can't
    # allocate memory: you tried to allocate N bytes. Error code 12 (Cannot allocate memory)"
    "not enough memory",
    # the same file's Android and MSVC branches: "DefaultCPUAllocator: not enough memory: ..."
    "CUBLAS_STATUS_ALLOC_FAILED",
    # ATen/cuda/Exceptions.h TORCH_CUDABLAS_CHECK: "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when
    # calling `cublasCreate(handle)`", cuBLAS finding no memory for its handle or workspace
)
"""Substrings of a RuntimeError's message that mean an allocator ran out of memory."""


def is_oom(exc: BaseException) -> bool:
    """The one OOM rule: the run is recorded as 'oom' and max_batch's search stops growing."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc) for m in OOM_MARKERS)


class PeakMemory:
    """Reset the peak at window start; read it at window end."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.baseline_rss = current_rss_bytes()

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            with contextlib.suppress(OSError):  # "5" resets VmHWM to the current RSS (Linux >= 4.0)
                _CLEAR_REFS.write_text("5")

    def read(self) -> MemoryStats:
        if self.device.type == "cuda":
            stats = torch.cuda.memory_stats(self.device)
            return MemoryStats(
                kind="cuda",
                peak_bytes=torch.cuda.max_memory_allocated(self.device),
                peak_reserved_bytes=torch.cuda.max_memory_reserved(self.device),
                alloc_retries=int(stats.get("num_alloc_retries", 0)),
                num_ooms=int(stats.get("num_ooms", 0)),
            )
        hwm = _status_kib("VmHWM")
        peak_rss = hwm * 1024 if hwm is not None else None
        above = peak_rss - self.baseline_rss if peak_rss is not None and self.baseline_rss else None
        return MemoryStats(
            kind="cpu-rss", peak_bytes=above, peak_rss_bytes=peak_rss,
            baseline_rss_bytes=self.baseline_rss,
        )


class StepMemory:
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak = PeakMemory(device)
        self.state_bytes = 0
        self.rss_start: int | None = None
        self.reserved: int | None = None
        self.last: MemoryStats | None = None

    def start(self, state_bytes: int) -> None:
        """Call right before the step; `state_bytes`: tensors alive at this point (CPU only)."""
        if self.device.type != "cuda":
            trim_heap()
        self.state_bytes = state_bytes
        self.rss_start = current_rss_bytes() if self.device.type != "cuda" else None
        self.reserved = None
        self.peak.reset()

    def read(self) -> int | None:
        """Peak since start() (or since the last phase()), in bytes."""
        stats = self.peak.read()
        self.last = stats
        if self.device.type == "cuda":
            if stats.peak_reserved_bytes is not None:
                self.reserved = max(self.reserved or 0, stats.peak_reserved_bytes)
            return stats.peak_bytes
        if stats.peak_rss_bytes is None or self.rss_start is None:
            return None
        return self.state_bytes + max(0, stats.peak_rss_bytes - self.rss_start)

    def phase(self) -> int | None:
        """Peak of the phase that just ended; the next phase's peak starts from now."""
        value = self.read()
        self.peak.reset()
        return value


def storages(t: torch.Tensor) -> list[tuple[int, int]]:
    """(key, bytes) of the memory behind a tensor; wrapper subclasses (FP8 tensors) are
    unflattened into their inner tensors."""
    flatten = getattr(t, "__tensor_flatten__", None)
    if flatten is not None and type(t) is not torch.Tensor and not isinstance(t, nn.Parameter):
        inner, _ = flatten()
        out: list[tuple[int, int]] = []
        for attr in inner:
            out += storages(getattr(t, attr))
        return out
    try:
        s = t.untyped_storage()
        return [(s.data_ptr(), s.nbytes())]
    except (RuntimeError, NotImplementedError):  # no storage: count the visible bytes
        return [(id(t), t.numel() * t.element_size())]


def unique_bytes(tensors: Sequence[torch.Tensor]) -> int:
    """Bytes behind tensors, each storage counted once (tied weights, views)."""
    seen: dict[int, int] = {}
    for t in tensors:
        for key, nbytes in storages(t):
            seen.setdefault(key, nbytes)
    return sum(seen.values())


def optimizer_state_tensors(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [v for state in optimizer.state.values() for v in state.values()
            if isinstance(v, torch.Tensor)]


def live_state_bytes(model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Parameters, buffers, gradients and optimizer state alive right now."""
    params = list(model.parameters())
    return unique_bytes(params + list(model.buffers())
                        + [p.grad for p in params if p.grad is not None]
                        + optimizer_state_tensors(optimizer))
