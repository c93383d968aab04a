"""Where a profiled step's time goes, from the events of one torch.profiler window: shares of
kernel (or CPU operator self) time per bucket (profilers/kernel_rules.py sorts them), the
tensor-core share, the top kernels, the unclassified names and the copy-engine time; and the
time per bucket in each phase of the step, so the waterfall can split GEMMs into forward and
backward from the same profiled steps.

Phases: an operator is in the backward pass when one of its ancestors (FunctionEvent.cpu_parent)
is an autograd engine node (`autograd::engine::evaluate_function: MmBackward0`, the name torch's
autograd profiler gives every backward node), in the optimizer when one is `Optimizer.step#...`
(torch.optim's record_function), else in the forward pass. A GPU kernel takes the phase of the
CPU operator that launched it (FunctionEvent.kernels: torch.autograd.profiler_util.Kernel, with
name and duration in us).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from torch.autograd import DeviceType

from mpbench.profilers.kernel_rules import (
    ATTENTION,
    COPY,
    TENSOR_CORE_BUCKETS,
    UNCLASSIFIED,
    classify_cpu_op,
    classify_kernel,
)
from mpbench.results.payloads import KernelSummary, KernelTime


@dataclass(frozen=True)
class Timed:
    """One kernel's (or CPU operator's self) time and its bucket."""

    name: str
    time_us: float
    bucket: str


_FP32_ATTENTION = re.compile(r"_f32_|float32|cutlassF_f32|cutlassB_f32", re.I)
_KERNEL_ARCH = re.compile(r"_sm(\d{2,3})(?![0-9])", re.I)


def uses_tensor_cores(item: Timed, sm: int | None = None) -> bool:
    """Tensor-core buckets; FP32 attention only from SM 8.0 on.

    torch's memory-efficient attention (`fmha_cutlassF/B_f32_..._smNN`) picks its GEMM in
    mem_eff_attention/gemm_kernel_utils.h (DefaultGemmType): for float on an arch tag >= 80
    it is OpClassTensorOp with OpMultiplyAddFastF32, CUTLASS's 3xTF32 on tensor cores; on
    older tags it falls back to SIMT FMA on CUDA cores. The tag is in the kernel name (the
    sm80 kernel also runs on Hopper); without one, `sm` (the device's major*10+minor) decides.
    """
    if item.bucket not in TENSOR_CORE_BUCKETS:
        return False
    if item.bucket != ATTENTION or not _FP32_ATTENTION.search(item.name):
        return True
    tag = _KERNEL_ARCH.search(item.name)
    arch = int(tag.group(1)) if tag else sm
    return arch is not None and arch >= 80


def summarize(items: Iterable[Timed], buckets: tuple[str, ...], top: int = 10,
              sm: int | None = None, unclassified_top: int = 5) -> KernelSummary:
    """Shares of kernel time per bucket, the top entries by time (names merged), the
    tensor-core share (time in tensor-core kernels over all kernel time), the unclassified
    share and its top names. memcpy/memset items are summed apart (copy_time_us): they are
    not kernels and stay out of every share."""
    per_name: dict[str, list[float | str]] = {}
    totals = dict.fromkeys(buckets, 0.0)
    tensor_core = copy_us = 0.0
    for item in items:
        if item.bucket == COPY:
            copy_us += item.time_us
            continue
        totals[item.bucket] = totals.get(item.bucket, 0.0) + item.time_us
        tensor_core += item.time_us if uses_tensor_cores(item, sm) else 0.0
        entry = per_name.setdefault(item.name, [0.0, item.bucket])
        entry[0] = float(entry[0]) + item.time_us
    total = sum(totals.values())

    def share(t: float) -> float:
        return t / total if total > 0 else 0.0

    def listed(entries: list[tuple[str, list[float | str]]]) -> list[KernelTime]:
        return [KernelTime(name=name[:300], bucket=str(bucket), time_us=float(t),
                           share=share(float(t))) for name, (t, bucket) in entries]

    ranked = sorted(per_name.items(), key=lambda kv: -float(kv[1][0]))
    gpu_only: dict[str, Any] = {}  # GPU kernels; CPU operators fall in "other" by design
    if UNCLASSIFIED in buckets:
        gpu_only = {"copy_time_us": copy_us, "unclassified_share": share(totals[UNCLASSIFIED]),
                    "unclassified_top": listed([kv for kv in ranked
                                                if kv[1][1] == UNCLASSIFIED][:unclassified_top])}
    return KernelSummary(buckets={b: share(t) for b, t in totals.items()}, bucket_time_us=totals,
                         tensor_core_share=share(tensor_core), top_kernels=listed(ranked[:top]),
                         total_time_us=total, **gpu_only)


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


class _Op(Protocol):
    """What cpu_self_times reads of an event (FunctionEvent's read-only fields)."""

    @property
    def name(self) -> str: ...
    @property
    def device_type(self) -> DeviceType: ...
    @property
    def is_async(self) -> bool: ...
    @property
    def self_cpu_time_total(self) -> float: ...


E = TypeVar("E", bound=_Op)


def cpu_self_times(events: Iterable[E]) -> Iterator[tuple[E, float]]:
    """(operator, self time in us) of the CPU operators a CPU profile sums: self times, so
    nested operators count once; not async; no ProfilerStep#n markers (their self time is
    the Python between operators); only operators that took time."""
    for e in events:
        if e.device_type != DeviceType.CPU or e.is_async or e.name.startswith("ProfilerStep"):
            continue
        us = float(e.self_cpu_time_total)
        if us > 0:
            yield e, us


def cpu_ops(events: Iterable[_Event]) -> list[Timed]:
    """The operators' self times (cpu_self_times), bucketed; an operator under optimizer.step
    (phase_of) is optimizer work."""
    return [Timed(e.name, us, classify_cpu_op(e.name, phase_of(e) == OPTIMIZER_PHASE))
            for e, us in cpu_self_times(events)]


def cpu_phase_times(events: Iterable[_Event]) -> dict[str, dict[str, float]]:
    """Operator self time (us) per phase and bucket (the operators of cpu_self_times)."""
    out: dict[str, dict[str, float]] = {}
    for e, us in cpu_self_times(events):
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
