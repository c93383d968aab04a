"""Per-step communication bytes, and compute vs exposed communication, on every rank.

After the measured window (never inside it), the probe times forward+backward pairs with
gradient sync on and off (DDP no_sync / FSDP2 set_requires_gradient_sync(False)), and the
step's collectives replayed alone:
  compute_ms       forward+backward without the gradient reduction
  exposed_comm_ms  with minus without: reduction time not hidden behind backward
  comm_alone_ms    the same collectives with nothing to overlap
On a GPU it also profiles NCCL kernels against compute kernels (exposed = NCCL time with
no compute kernel running). No optimizer step runs: the weights are not touched.

GPU timeline arithmetic: exposed communication = time some NCCL kernel runs while no compute
kernel does; that is the part of communication the step waits for (on one GPU, whatever the
streams).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist

from mpbench.config.parallel import ParallelRun
from mpbench.distributed.comm import CommCounter, make_buffers, replay
from mpbench.profilers.base import Profiler, RunContext
from mpbench.results.payloads import ParallelResult
from mpbench.train.measure import synchronize


class ParallelProbe(Profiler):
    summary = "communication bytes per step; compute vs exposed communication"
    Result = ParallelResult

    def __init__(self, run: ParallelRun, counter: CommCounter, stepper: Any) -> None:
        super().__init__()
        self.run, self.counter, self.stepper = run, counter, stepper
        self.found: dict[str, Any] = {}

    def _fwd_bwd(self, ctx: RunContext, x: torch.Tensor, y: torch.Tensor, sync: bool) -> float:
        model = ctx.model
        no_sync = contextlib.nullcontext()
        if self.run.strategy == "ddp" and not sync:
            no_sync = model.no_sync()  # type: ignore[operator]
        elif self.run.strategy == "fsdp2":
            model.set_requires_gradient_sync(sync)  # type: ignore[operator]
        dist.barrier()  # start together: a late peer is skew, not communication
        synchronize(ctx.device)
        t0 = time.perf_counter()
        with no_sync, ctx.recipe.autocast(ctx.device):
            loss = model(x, y)
        loss.backward()
        synchronize(ctx.device)
        dt = time.perf_counter() - t0
        ctx.optimizer.zero_grad(set_to_none=True)
        return dt * 1e3

    def _replay_ms(self, ctx: RunContext, steps: int) -> dict[str, float]:
        """Milliseconds per op of the last measured step's collectives, replayed alone."""
        calls = self.stepper.step_comm[-1] if self.stepper.step_comm else []
        out: dict[str, float] = {}
        for op in sorted({c.op for c in calls}):
            buffers = make_buffers([c for c in calls if c.op == op], dist.get_world_size(),
                                   ctx.device)
            times = []
            for _ in range(steps + 1):  # the first replay warms up the buffers' paths
                dist.barrier()
                synchronize(ctx.device)
                t0 = time.perf_counter()
                replay(buffers)
                synchronize(ctx.device)
                times.append((time.perf_counter() - t0) * 1e3)
            out[op] = statistics.median(times[1:])
        return out

    def after_measure(self, ctx: RunContext) -> None:
        steps = self.run.probe_steps
        if steps == 0:
            return
        x, y = ctx.next_batch()
        on: list[float] = []
        off: list[float] = []
        for _ in range(steps):  # off, on, off, on: ends synced, so FSDP2 holds no stale grads
            off.append(self._fwd_bwd(ctx, x, y, sync=False))
            on.append(self._fwd_bwd(ctx, x, y, sync=True))
        with_sync, without = statistics.median(on), statistics.median(off)
        alone = self._replay_ms(ctx, steps)
        gradient_op = "all_reduce" if self.run.strategy == "ddp" else "reduce_scatter"
        probe: dict[str, Any] = {
            "steps": steps,
            "fwd_bwd_ms": with_sync,
            "compute_ms": without,
            "exposed_comm_ms": with_sync - without,
            "comm_alone_ms": alone,
            "covers": ("DDP gradient all-reduce" if self.run.strategy == "ddp" else
                       "FSDP2 gradient reduce-scatter; the parameter all-gathers run in both "
                       "timings, so they are in compute_ms (see gpu_kernels on a GPU)"),
        }
        if alone.get(gradient_op):  # how much of the gradient reduction backward hid
            exposed = max(0.0, with_sync - without)
            probe["hidden_fraction"] = max(0.0, 1.0 - exposed / alone[gradient_op])
        self.found["probe"] = probe
        if ctx.device.type == "cuda":
            self.found["gpu_kernels"] = self._kernel_profile(ctx, x, y, steps)

    def _kernel_profile(self, ctx: RunContext, x: torch.Tensor, y: torch.Tensor,
                        steps: int) -> dict[str, Any]:
        from torch.profiler import ProfilerActivity, profile

        from mpbench.profilers.stderr_filter import without_profiler_chatter

        with without_profiler_chatter(), profile(
                activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(steps):
                self._fwd_bwd(ctx, x, y, sync=True)
        return kernel_overlap(prof.events(), steps)

    def result(self, ctx: RunContext) -> ParallelResult:
        per_step = [self.counter.summarize(calls) for calls in self.stepper.step_comm]
        out: dict[str, Any] = dict(self.found)
        if per_step:
            totals = [s["bytes"] for s in per_step]
            typical = per_step[totals.index(sorted(totals)[len(totals) // 2])]
            out["comm_per_step"] = typical
            out["comm_bytes_per_step_range"] = [min(totals), max(totals)]
        return ParallelResult.model_validate(out)


# -- GPU timeline arithmetic: communication kernels against compute kernels ------------------

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
