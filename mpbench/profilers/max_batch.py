"""The largest batch size that fits, per precision: doubling, then bisection.

On a GPU a batch "fits" when a training step at that batch runs without running out of
memory; the OutOfMemoryError is caught, memory is freed and the search goes on (the process
survives). A CPU has no allocator limit to hit, so there `memory_budget_mb` bounds it: a batch
fits when the step's peak memory (profilers/peaks.py, as the memory profiler measures
it: model state plus the RSS rise during the step) stays within the budget. The search itself is a pure function of a `fits(batch) -> bool`
callable, so it can be checked against a fake limit.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from pydantic import Field

from mpbench.profilers.base import (
    Profiler,
    ProfilerOptions,
    RunContext,
    register_profiler,
    weights_restored,
)
from mpbench.profilers.peaks import StepMemory, is_oom, live_state_bytes, release_memory
from mpbench.results.payloads import MaxBatchResult, Skipped


class MaxBatchOptions(ProfilerOptions):
    memory_budget_mb: float | None = Field(
        None, gt=0, description="peak memory allowed per step (MiB); needed on a CPU")
    start: int | None = Field(None, gt=0, description="first batch tried (default: the suite's)")
    max_batch_size: int = Field(4096, gt=0, description="the search stops here")
    steps_per_trial: int = Field(1, gt=0, le=10, description="training steps per batch tried")
    time_budget_s: float = Field(300.0, gt=0, description="stop searching after this long")


@dataclass
class BatchSearch:
    max_batch_size: int
    """Largest batch that fit (0: not even the smallest)."""
    first_failure: int | None
    limit: str
    """'memory' (a batch failed), 'cap' (max_batch_size fit) or 'time' (time budget spent)."""
    tried: list[list[Any]] = field(default_factory=list)


def search_max_batch(fits: Callable[[int], bool], start: int = 1, cap: int = 4096,
                     out_of_time: Callable[[], bool] = lambda: False) -> BatchSearch:
    """Double from `start` until a batch fails (or `cap` fits), then bisect between the
    largest fit and the smallest failure. Each size is tried at most once."""
    tried: list[list[Any]] = []

    def probe(b: int) -> bool:
        ok = bool(fits(b))
        tried.append([b, ok])
        return ok

    good, bad = 0, None
    b = max(1, min(start, cap))
    if probe(b):
        good = b
        while good < cap and not out_of_time():
            nxt = min(2 * good, cap)
            if probe(nxt):
                good = nxt
            else:
                bad = nxt
                break
    else:
        bad = b
    while bad is not None and bad - good > 1 and not out_of_time():
        mid = (good + bad) // 2
        if probe(mid):
            good = mid
        else:
            bad = mid
    if bad is not None and bad - good <= 1:
        limit = "memory"
    elif bad is None and good >= cap:
        limit = "cap"
    else:
        limit = "time"
    return BatchSearch(good, bad, limit, tried)


def oom_safe(step: Callable[[int], None], cleanup: Callable[[], None]) -> Callable[[int], bool]:
    """fits(b): run `step(b)`; an out-of-memory error means False (after `cleanup`)."""

    def fits(b: int) -> bool:
        try:
            step(b)
            return True
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            if not is_oom(exc):
                raise
        # outside the except block, so the traceback (and the tensors its frames hold) is gone
        cleanup()
        return False

    return fits


def shape_granularity(ctx: RunContext) -> int:
    """Smallest step between batch sizes the recipe accepts (FP8 GEMMs want multiples of 16)."""
    cfg = ctx.spec.model_config(ctx.source.vocab_size)
    seq = ctx.spec.train.seq_len
    for g in (1, 2, 4, 8, 16, 32):
        if all(ctx.recipe.check_shapes(cfg, k * g, seq) is None for k in (1, 2, 3)):
            return g
    return 32


@register_profiler
class MaxBatchProfiler(Profiler):
    summary = "largest batch size that fits (GPU: no OOM; CPU: within memory_budget_mb)"
    Options = MaxBatchOptions
    Result = MaxBatchResult

    def __init__(self, options: ProfilerOptions | None = None) -> None:
        super().__init__(options)
        self.found: dict[str, Any] = {}

    @property
    def opts(self) -> MaxBatchOptions:
        assert isinstance(self.options, MaxBatchOptions)
        return self.options

    def check(self, device: torch.device) -> str | None:
        if device.type != "cuda" and self.opts.memory_budget_mb is None:
            return ("max_batch on a CPU needs options.memory_budget_mb: a CPU has no allocator "
                    "limit to run into")
        return None

    def after_measure(self, ctx: RunContext) -> None:
        o = self.opts
        if torch.distributed.is_available() and torch.distributed.is_initialized() and (
                torch.distributed.get_world_size() > 1):
            # an OOM on one rank while the others enter a collective would hang them all
            self.found = {"skipped": "max_batch runs in single-process runs only"}
            return
        device, seq = ctx.device, ctx.spec.train.seq_len
        gran = shape_granularity(ctx)
        budget = int(o.memory_budget_mb * 2**20) if o.memory_budget_mb else None
        memory = StepMemory(device)
        gen = torch.Generator().manual_seed(4321)
        peaks: dict[int, int | None] = {}

        def cleanup() -> None:  # after an OOM: drop partial gradients, collect, free the cache
            ctx.optimizer.zero_grad(set_to_none=True)
            if ctx.scaler is not None:  # an OOM between unscale_ and step leaves it mid-step
                with contextlib.suppress(RuntimeError, AssertionError):
                    ctx.scaler.update()
            release_memory(device)

        def step(units: int) -> None:
            b = units * gran
            ctx.optimizer.zero_grad(set_to_none=True)
            memory.start(live_state_bytes(ctx.model, ctx.optimizer))
            for _ in range(o.steps_per_trial):
                x, y = ctx.source.batch("train", b, seq, gen)
                ctx.train_step(x.to(device), y.to(device))
            peaks[b] = used = memory.read()
            if budget is not None and (used is None or used > budget):
                raise torch.OutOfMemoryError(f"peak {used} bytes over the budget {budget}")

        deadline = time.perf_counter() + o.time_budget_s
        start = max(1, (o.start or ctx.spec.train.batch_size) // gran)
        try:
            with weights_restored(ctx.model):
                search = search_max_batch(oom_safe(step, cleanup), start, max(1, o.max_batch_size // gran),
                                          lambda: time.perf_counter() > deadline)
        except Exception as exc:  # a profiler must not fail the run it observes
            self.found = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
            return
        finally:
            cleanup()
        why = {"memory": "cuda out of memory" if budget is None else f"memory budget {o.memory_budget_mb} MiB",
               "cap": f"max_batch_size {o.max_batch_size} fits", "time": f"time budget {o.time_budget_s} s"}
        self.found = {
            "max_batch_size": search.max_batch_size * gran,
            "first_failing_batch": search.first_failure * gran if search.first_failure else None,
            "limit": f"{search.limit}: {why[search.limit]}",
            "tried": [[b * gran, ok] for b, ok in search.tried],
            "peak_bytes": {str(b): v for b, v in peaks.items()},
            "seq_len": seq,
            "granularity": gran,
            "memory_budget_bytes": budget,
        }

    def result(self, ctx: RunContext) -> MaxBatchResult | Skipped:
        """The search's outcome, checked against MaxBatchResult (or why it did not search)."""
        if "skipped" in self.found:
            return Skipped.model_validate(self.found)
        return MaxBatchResult.model_validate(self.found)
