"""Which phase of the step each profiled operator or kernel ran in: forward, backward or optimizer,
time per bucket (profilers/kernels.py) within each, so the waterfall can split GEMMs into
forward and backward from the same profiled steps.

An operator is in the backward pass when one of its ancestors (FunctionEvent.cpu_parent) is an
autograd engine node (`autograd::engine::evaluate_function: MmBackward0`, the name torch's
autograd profiler gives every backward node), in the optimizer when one is `Optimizer.step#...`
(torch.optim's record_function), else in the forward pass. A GPU kernel takes the phase of the
CPU operator that launched it (FunctionEvent.kernels: torch.autograd.profiler_util.Kernel, with
name and duration in us).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from torch.autograd import DeviceType

from mpbench.profilers.kernels import classify_cpu_op, classify_kernel

FORWARD = "forward"
BACKWARD = "backward"
OPTIMIZER_PHASE = "optimizer"
BACKWARD_MARK = "autograd::engine::evaluate_function"
OPTIMIZER_MARK = "Optimizer."


class _Kernel(Protocol):
    name: str
    duration: float


class _Event(Protocol):
    """The FunctionEvent fields read here (torch.autograd.profiler_util.FunctionEvent)."""

    name: str
    device_type: DeviceType
    is_async: bool
    self_cpu_time_total: float
    kernels: list[_Kernel]

    @property
    def cpu_parent(self) -> _Event | None: ...


def phase_of(event: _Event) -> str:
    node: _Event | None = event
    while node is not None:
        if node.name.startswith(BACKWARD_MARK):
            return BACKWARD
        if node.name.startswith(OPTIMIZER_MARK):
            return OPTIMIZER_PHASE
        node = node.cpu_parent
    return FORWARD


def _add(out: dict[str, dict[str, float]], phase: str, bucket: str, us: float) -> None:
    per = out.setdefault(phase, {})
    per[bucket] = per.get(bucket, 0.0) + us


def cpu_phase_times(events: Iterable[_Event]) -> dict[str, dict[str, float]]:
    """Operator self time (us) per phase and bucket, the operators profilers/tensor_cores.py
    sums (CPU, not async, no ProfilerStep markers)."""
    out: dict[str, dict[str, float]] = {}
    for e in events:
        if e.device_type != DeviceType.CPU or e.is_async or e.name.startswith("ProfilerStep"):
            continue
        us = float(e.self_cpu_time_total)
        if us > 0:
            phase = phase_of(e)
            _add(out, phase, classify_cpu_op(e.name, phase == OPTIMIZER_PHASE), us)
    return out


def gpu_phase_times(events: Iterable[_Event]) -> dict[str, dict[str, float]]:
    """Kernel time (us) per phase (of the launching CPU operator) and bucket."""
    out: dict[str, dict[str, float]] = {}
    for e in events:
        if e.device_type != DeviceType.CPU or not getattr(e, "kernels", None):
            continue
        phase = phase_of(e)
        for k in e.kernels:
            _add(out, phase, classify_kernel(k.name), float(k.duration))
    return out


def phase_times(events: Iterable[_Event], cuda: bool) -> dict[str, dict[str, float]]:
    return gpu_phase_times(events) if cuda else cpu_phase_times(events)
