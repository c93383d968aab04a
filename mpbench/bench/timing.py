"""Time one operation: warm-up, then repetitions until a time budget is used; report the median.

On CUDA each repetition sits between two CUDA events and the host synchronises once at the end,
so launches queue back to back. On a CPU each repetition is a perf_counter interval.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from pydantic import BaseModel, ConfigDict, Field


class TimingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

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
