"""GPU timeline arithmetic: communication kernels against compute kernels.

exposed communication = time some NCCL kernel runs while no compute kernel does; that is
the part of communication the step waits for (on one GPU, whatever the streams).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Interval = tuple[float, float]


def union(intervals: Iterable[Interval]) -> list[Interval]:
    """Merge overlapping [start, end) intervals."""
    out: list[Interval] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def length(intervals: list[Interval]) -> float:
    return sum(end - start for start, end in intervals)


def subtract(a: list[Interval], b: list[Interval]) -> list[Interval]:
    """Parts of union `a` not covered by union `b` (both sorted and disjoint)."""
    out: list[Interval] = []
    j = 0
    for start, end in a:
        cur = start
        while j < len(b) and b[j][1] <= cur:
            j += 1
        k = j
        while k < len(b) and b[k][0] < end:
            if b[k][0] > cur:
                out.append((cur, b[k][0]))
            cur = max(cur, b[k][1])
            k += 1
        if cur < end:
            out.append((cur, end))
    return out


def is_comm_kernel(name: str) -> bool:
    return "nccl" in name.lower()


def split_exposed(comm: list[Interval], compute: list[Interval]) -> dict[str, float]:
    """Time in communication, in compute, and communication no compute hides (same unit)."""
    comm_u, compute_u = union(comm), union(compute)
    return {
        "comm": length(comm_u),
        "compute": length(compute_u),
        "exposed_comm": length(subtract(comm_u, compute_u)),
    }


def kernel_overlap(events: Any, steps: int) -> dict[str, Any]:
    """From torch.profiler events: per-step milliseconds of NCCL and compute kernels."""
    from mpbench.profilers.tensor_cores import is_kernel

    comm: list[Interval] = []
    compute: list[Interval] = []
    names: set[str] = set()
    for e in events:
        if not is_kernel(e):  # user annotations (FSDP::all_gather ...) would hide exposure
            continue
        span = (e.time_range.start, e.time_range.end)
        if is_comm_kernel(e.name):
            comm.append(span)
            names.add(e.name)
        else:
            compute.append(span)
    split = split_exposed(comm, compute)
    per_step = {f"{k}_ms": v / 1e3 / max(1, steps) for k, v in split.items()}
    return {**per_step, "steps": steps, "comm_kernels": sorted(names)[:10],
            "source": "torch.profiler CUDA kernels; NCCL kernels = names containing 'nccl'"}
