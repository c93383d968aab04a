"""Timing: one operation (warm-up, then repetitions until a time budget is used; the median),
and the drift probe timed around every run.

On CUDA each repetition sits between two CUDA events and the host synchronises once at the end,
so launches queue back to back. On a CPU each repetition is a perf_counter interval.

The drift probe is fixed and tiny: a 256x256 fp32 matmul (compute) and a 16 MiB tensor copy
(memory bandwidth), each the mean of 20 repeats after a warm-up, well under a second in all.
The mean, not the median: time lost to other processes on a busy machine is part of what the
probe must see (a median of sub-millisecond ops slips between preemptions and reads an idle
machine). If the probe got slower between the baseline and the current results, the machine
changed (load, clocks, thermal state), not necessarily the code; `mpbench gate
--normalize-by-probe` divides it out.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from pydantic import Field

from mpbench.config import Strict
from mpbench.results.schema import ProbeTimes


class TimingConfig(Strict):
    warmup: int = Field(3, ge=1, description="untimed calls before measuring")
    min_reps: int = Field(5, ge=1, description="timed calls at least")
    max_reps: int = Field(200, ge=1, description="timed calls at most")
    min_time_s: float = Field(0.2, gt=0, description="keep repeating until this much time is timed")
    max_case_s: float = Field(5.0, gt=0, description="stop adding reps past this (min_reps still run)")

    def quick(self) -> TimingConfig:
        """A cheaper variant for --quick: fewer calls, shorter budget."""
        return self.model_copy(update={
            "warmup": min(self.warmup, 2), "min_reps": min(self.min_reps, 3),
            "max_reps": min(self.max_reps, 20), "min_time_s": self.min_time_s / 4,
            "max_case_s": self.max_case_s / 4,
        })


@dataclass(frozen=True)
class Timing:
    times_ms: list[float]

    @property
    def reps(self) -> int:
        return len(self.times_ms)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def min_ms(self) -> float:
        return min(self.times_ms)

    @property
    def spread(self) -> float:
        """(p90 - p10) / median: how noisy the repetitions were."""
        if len(self.times_ms) < 3:
            return 0.0
        q = statistics.quantiles(self.times_ms, n=10, method="inclusive")
        return (q[-1] - q[0]) / self.median_ms


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plan_reps(estimate_s: float, cfg: TimingConfig) -> int:
    """Enough calls to fill min_time_s, within [min_reps, max_reps] and the max_case_s budget."""
    wanted = math.ceil(cfg.min_time_s / max(estimate_s, 1e-9))
    affordable = math.floor(cfg.max_case_s / max(estimate_s, 1e-9))
    return max(cfg.min_reps, min(wanted, affordable, cfg.max_reps))


def time_op(fn: Callable[[], object], device: torch.device, cfg: TimingConfig) -> Timing:
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(cfg.warmup):
        fn()
    _sync(device)
    estimate = (time.perf_counter() - t0) / cfg.warmup
    reps = plan_reps(estimate, cfg)
    if device.type == "cuda":
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        for start, end in zip(starts, ends, strict=True):
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize(device)
        return Timing([s.elapsed_time(e) for s, e in zip(starts, ends, strict=True)])
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return Timing(times)


# -- the drift probe -------------------------------------------------------------------------

MATMUL_N = 256
COPY_ELEMENTS = 4 * 2**20  # 16 MiB of fp32
REPEATS = 20


def _mean_ms(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    fn()  # warm: first-touch allocation and kernel selection are not the machine's speed
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return sum(times) / len(times)


def time_probe(device: torch.device, repeats: int = REPEATS) -> ProbeTimes:
    """Time the probe on `device` with the current torch thread setting."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(MATMUL_N, MATMUL_N, generator=gen).to(device)
    b = torch.randn(MATMUL_N, MATMUL_N, generator=gen).to(device)
    src = torch.ones(COPY_ELEMENTS, device=device)
    dst = torch.empty_like(src)
    with torch.no_grad():
        matmul = _mean_ms(lambda: torch.mm(a, b), device, repeats)
        copy = _mean_ms(lambda: dst.copy_(src), device, repeats)
    return ProbeTimes(matmul_ms=matmul, copy_ms=copy)
