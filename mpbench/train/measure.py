"""Warm-up, then the measured window: per-step times, throughput, peak memory, losses.

Every recipe reads loss.item() once per step, so host syncs are equal across recipes
(GradScaler's found_inf check syncs anyway). Work done by profiler hooks inside the
window is timed and taken out of the throughput window; `on_hooks` brackets that work
('start' / 'end'), so energy counters can take it out too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from mpbench.config.schema import TrainConfig
from mpbench.profilers.base import StepInfo
from mpbench.profilers.peaks import PeakMemory
from mpbench.results.schema import CompileInfo, MemoryStats, StepStats
from mpbench.train.optim import Stepper

ProgressFn = Callable[[str, int, int, float | None], None]
"""(phase, step, total, tokens_per_s) -> None"""


def step_stats(times_ms: list[float]) -> StepStats | None:
    """The timed window's step times summarised (median, spread, percentiles)."""
    if not times_ms:
        return None
    a = np.asarray(times_ms, dtype=float)
    return StepStats(
        n=int(a.size),
        median_ms=float(np.median(a)),
        mean_ms=float(a.mean()),
        stdev_ms=float(a.std(ddof=1)) if a.size > 1 else 0.0,
        p10_ms=float(np.percentile(a, 10)),
        p90_ms=float(np.percentile(a, 90)),
        min_ms=float(a.min()),
        max_ms=float(a.max()),
    )


@dataclass
class Measurement:
    step_times_ms: list[float] = field(default_factory=list)
    stats: StepStats | None = None
    tokens_per_s: float | None = None
    window_s: float | None = None
    hook_time_s: float = 0.0
    first_step_s: float | None = None
    memory: MemoryStats | None = None
    loss_curve: list[tuple[int, float]] = field(default_factory=list)
    eval_curve: list[tuple[int, float]] = field(default_factory=list)
    eval_times_s: list[float] = field(default_factory=list)
    """Training time at each eval_curve point: the sum of step times, warm-up included,
    the first step (one-off costs) left out."""
    train_time_s: float = 0.0
    eval_loss: float | None = None
    diverged_step: int | None = None
    diverged_reason: str | None = None
    last_good_loss: float | None = None
    compile: CompileInfo | None = None


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    stepper: Stepper,
    next_batch: Callable[[], tuple[torch.Tensor, torch.Tensor]],
    cfg: TrainConfig,
    device: torch.device,
    max_loss: float,
    on_step: Callable[[StepInfo], None],
    peak: PeakMemory,
    progress: ProgressFn | None = None,
    eval_fn: Callable[[], float | None] | None = None,
    on_hooks: Callable[[str], None] | None = None,
) -> Measurement:
    m = Measurement()
    tokens = cfg.batch_size * cfg.seq_len
    global_step = 0

    def one_step(phase: str, index: int) -> bool:
        """Run, time and check one step; False when the run diverged."""
        nonlocal global_step
        x, y = next_batch()
        t0 = time.perf_counter()
        result = stepper(x, y)
        loss = result.loss.item()  # the one host sync per step, equal for all recipes
        synchronize(device)
        dt = time.perf_counter() - t0
        if phase == "measure":
            m.step_times_ms.append(dt * 1e3)
        elif index == 0:
            m.first_step_s = dt
        global_step += 1
        if global_step > 1:  # the first step carries one-off costs (lazy init, compile)
            m.train_time_s += dt
        if not math.isfinite(loss) or loss > max_loss:
            m.diverged_step = global_step
            what = "non-finite" if not math.isfinite(loss) else f"above the bound {max_loss:.3g}"
            m.diverged_reason = f"loss {loss:.4g} is {what} at step {global_step}"
            return False
        m.last_good_loss = loss
        m.loss_curve.append((global_step, loss))
        h0 = time.perf_counter()
        if on_hooks is not None:
            on_hooks("start")
        scale = stepper.scaler.get_scale() if stepper.scaler is not None else None
        norm = float(result.grad_norm) if result.grad_norm is not None else None
        on_step(StepInfo(index, phase, loss, norm, scale, dt, (x, y)))
        if eval_fn is not None and cfg.eval_every and global_step % cfg.eval_every == 0:
            value = eval_fn()
            if value is not None:
                m.eval_curve.append((global_step, value))
                m.eval_times_s.append(m.train_time_s)
        if phase == "measure" or on_hooks is not None:
            synchronize(device)
        if on_hooks is not None:
            on_hooks("end")
        if phase == "measure":
            m.hook_time_s += time.perf_counter() - h0
        if progress is not None:
            rate = tokens / (sum(m.step_times_ms[-5:]) / 1e3 / len(m.step_times_ms[-5:])) if (
                phase == "measure") else None
            progress(phase, index + 1, cfg.warmup_steps if phase == "warmup" else cfg.steps, rate)
        return True

    for i in range(cfg.warmup_steps):
        if not one_step("warmup", i):
            return m
    synchronize(device)
    peak.reset()
    t_window = time.perf_counter()
    for i in range(cfg.steps):
        if not one_step("measure", i):
            return m
    synchronize(device)
    wall = time.perf_counter() - t_window
    m.memory = peak.read()
    m.window_s = wall - m.hook_time_s
    m.tokens_per_s = tokens * cfg.steps / m.window_s
    m.stats = step_stats(m.step_times_ms)
    return m
