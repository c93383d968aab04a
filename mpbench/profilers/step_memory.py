"""Peak memory of one training step, measured the same way by the memory and max_batch profilers.

CUDA: the allocator's max_memory_allocated since the last reset (absolute: it sees every
tensor of the process). CPU: there is no allocator total, and process RSS carries things a
step does not need (lazily loaded libraries, oneDNN kernels cached for earlier shapes), so
the peak is the model state counted from its tensors at step start plus how far RSS rose
above its value at step start (VmHWM after resetting it, Linux). glibc is asked to return
freed pages first (malloc_trim), so the rise is not hidden by reuse of cached free memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from mpbench.profilers.memory import PeakMemory, current_rss_bytes, trim_heap
from mpbench.profilers.saved_tensors import storages
from mpbench.results.schema import MemoryStats


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
