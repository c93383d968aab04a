"""Tensor Core share: a short torch.profiler window after the measured window.

The profiled steps are extra steps (never timed; the weights are restored after them).
Just before the profiler starts, `plain_steps` unprofiled steps are timed (after one untimed)
with no profiler in the process: the waterfall (analysis/waterfall.py) sets what the operators
cover against them, and the profiled steps against them give the profiler's own overhead.
(Steps timed inside the profile with its collection switched off ran slower than the
measured window, and by different amounts per recipe: fp32 +1.0 ms, bf16 +0.5 ms on
gpt-tiny, 5 runs each; README, "Where the time went".)
On a GPU every kernel is sorted into a bucket (profile/kernels.py) and each bucket's
share of summed kernel time is recorded; on a CPU the operators' self times are sorted
the same way, and the result says plainly that a CPU has no tensor cores.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
from pydantic import Field
from torch.autograd import DeviceType
from torch.autograd.profiler_util import FunctionEvent
from torch.profiler import ProfilerActivity, profile, schedule

from mpbench.profilers.base import (
    Profiler,
    ProfilerOptions,
    RunContext,
    register_profiler,
    weights_restored,
)
from mpbench.profilers.kernel_rules import (
    CPU_BUCKETS,
    GPU_BUCKETS,
    classify_kernel,
)
from mpbench.profilers.profile_summary import Timed, cpu_ops, phase_times, summarize
from mpbench.profilers.stderr_filter import without_profiler_chatter
from mpbench.results.output import write_output
from mpbench.results.payloads import TensorCoreResult


class TensorCoreOptions(ProfilerOptions):
    steps: int = Field(3, gt=0, le=50, description="profiled steps (after one untimed warm step)")
    plain_steps: int = Field(
        10, ge=0, le=200, description="unprofiled steps timed just before the profiler starts "
        "(the waterfall's match for the measured window; 0: none)")
    top: int = Field(12, gt=0, le=200, description="how many kernels to list by time")
    trace: bool | str = Field(
        False, description="export a Chrome trace (opens in Perfetto): true, or a directory")


GPU_NOTE = ("shares of summed GPU kernel time over {steps} profiled steps (kernels on other "
            "streams may overlap; memcpy/memset are copy_time_us, outside the shares); "
            "tensor-core buckets: GEMMs in fp4/fp8/bf16/fp16/tf32, tensor-core convolutions and "
            "attention; gemm_simt and conv_simt are CUDA-core work; 'unclassified' is time in "
            "names no rule knows (unclassified_top lists them); record_function ranges (user "
            "annotations) are not kernels and are left out. gpu_busy_fraction: time any kernel "
            "runs over the wall time of the profiled steps (under the profiler's own overhead; well below "
            "1 means the GPU waits for the host: launch-bound)")
CPU_NOTE = ("CPU run: a CPU has no tensor cores. Shares are of operator self time over "
            "{steps} profiled steps; 'matmul' is the share spent in matrix multiplies")


@register_profiler
class TensorCoreProfiler(Profiler):
    summary = "share of GPU kernel time in tensor-core GEMMs per dtype, attention, FP8 casts, ..."
    Options = TensorCoreOptions
    Result = TensorCoreResult
    first_after_window = True  # its plain steps are the waterfall's match for the window

    def __init__(self, options: ProfilerOptions | None = None) -> None:
        super().__init__(options)
        self.found = TensorCoreResult()

    @property
    def opts(self) -> TensorCoreOptions:
        assert isinstance(self.options, TensorCoreOptions)
        return self.options

    def after_measure(self, ctx: RunContext) -> None:
        cuda = ctx.device.type == "cuda"
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        steps = self.opts.steps
        with weights_restored(ctx.model):
            if self.opts.plain_steps:  # the first step after the window and the other
                _timed_step(ctx, cuda)  # profilers' work ran 5-12% slow: warm, untimed
            plain_us = [_timed_step(ctx, cuda) * 1e6 for _ in range(self.opts.plain_steps)]
            with without_profiler_chatter(), profile(
                activities=activities,
                schedule=schedule(wait=0, warmup=1, active=steps, repeat=1),
            ) as prof:
                wall_us = profile_steps(prof, lambda: _timed_step(ctx, cuda), steps) * 1e6
        events = list(prof.events() or [])
        if cuda:
            major, minor = torch.cuda.get_device_capability(ctx.device)
            summary = summarize(gpu_kernels(events), GPU_BUCKETS, self.opts.top,
                                sm=major * 10 + minor)
            device = {"device_kind": "cuda", "note": GPU_NOTE.format(steps=steps),
                      "gpu_busy_fraction": busy_time_us(events) / wall_us}
        else:
            summary = summarize(cpu_ops(events), CPU_BUCKETS, self.opts.top)
            device = {"device_kind": "cpu", "tensor_core_share": None,
                      "note": CPU_NOTE.format(steps=steps)}
        measured = {f: getattr(summary, f) for f in summary.model_fields_set} | device
        self.found = TensorCoreResult(
            **measured, steps=steps,
            phase_time_us=phase_times(events, cuda),  # the waterfall's GEMM fwd/bwd split
            wall_time_us=wall_us, plain_step_us=plain_us,  # the waterfall's matching steps
            **({"trace_path": str(export_trace(prof, self.opts.trace, ctx))}
               if self.opts.trace else {}))

    def result(self, ctx: RunContext) -> TensorCoreResult:
        return self.found


def profile_steps(prof: profile, timed_step: Callable[[], float], steps: int) -> float:
    """A warm step (the schedule's warm-up, discarded), then `steps` profiled steps: their
    summed wall time (s)."""
    timed_step()
    prof.step()
    profiled_s = 0.0
    for _ in range(steps):
        profiled_s += timed_step()
        prof.step()
    return profiled_s


def _timed_step(ctx: RunContext, cuda: bool) -> float:
    """One training step's wall time (s), the GPU drained before the clock stops."""
    batch = ctx.next_batch()
    t0 = time.perf_counter()
    ctx.train_step(*batch)
    if cuda:
        torch.cuda.synchronize(ctx.device)
    return time.perf_counter() - t0


def is_kernel(e: FunctionEvent) -> bool:
    """A GPU kernel (or memcpy/memset), not a GPU-side copy of a record_function range.

    Since torch 2.5 the profiler's events also hold GPU-side copies of user annotations
    (ProfilerStep#N, Optimizer.step, nccl:all_reduce, FSDP::all_gather, DDP forward) with
    device_type CUDA and is_user_annotation set; torch's own table (profiler_util.py
    `_build_table`, checked in torch 2.13) leaves them out of device time, and so do we.
    """
    return e.device_type == DeviceType.CUDA and not getattr(e, "is_user_annotation", False)


def gpu_kernels(events: list[FunctionEvent]) -> list[Timed]:
    out = []
    for e in events:
        if is_kernel(e):
            out.append(Timed(e.name, float(e.time_range.elapsed_us()), classify_kernel(e.name)))
    return out


def busy_time_us(events: list[FunctionEvent]) -> float:
    """Time at least one kernel runs (the union of kernel spans: streams may overlap)."""
    busy, end = 0.0, float("-inf")
    for start, stop in sorted((e.time_range.start, e.time_range.end)
                              for e in events if is_kernel(e)):
        if stop > end:
            busy += stop - max(start, end)
            end = stop
    return busy


def export_trace(prof: profile, where: bool | str, ctx: RunContext) -> Path:
    """Chrome trace JSON (opens in Perfetto and chrome://tracing), one file per run."""
    results = ctx.extra.get("results_dir")  # set by the runner when it knows --out
    base = Path(where) if isinstance(where, str) else Path(results or "reports") / "traces"
    name = f"{ctx.spec.run_id}.trace.json"
    rank = ctx.extra.get("trace_rank")  # a torchrun rank: one directory per run, a file per
    if rank is not None:  # rank, as Holistic Trace Analysis reads a multi-rank trace set
        name = f"{ctx.spec.run_id}/rank{rank}.trace.json"
    path = write_output(base / name, lambda tmp: prof.export_chrome_trace(str(tmp)), "trace")
    return path.resolve()
