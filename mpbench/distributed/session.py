"""What the training loop calls for a distributed run: check, wrap model, wrap step, probe.

One session per run; train_run(..., parallel=session) calls these hooks and nothing else.
"""

from __future__ import annotations

import torch
from torch import nn

from mpbench.config.parallel import ParallelRun
from mpbench.distributed.comm import CommCounter
from mpbench.distributed.compat import dtensor_reduces_found_inf, fsdp2_unsupported
from mpbench.distributed.faults import FaultInjection
from mpbench.distributed.probe import ParallelProbe
from mpbench.distributed.wrap import DistributedStepper, wrap_ddp, wrap_fsdp2
from mpbench.precision.base import Recipe
from mpbench.profilers.base import Profiler
from mpbench.train.optim import Stepper


class ParallelSession:
    def __init__(self, run: ParallelRun, device: torch.device, world_size: int,
                 warmup_steps: int, steps: int, fault: FaultInjection | None = None,
                 skip_reason: str | None = None) -> None:
        self.run, self.device = run, device
        self.counter = CommCounter(world_size)
        self.measured = range(warmup_steps, warmup_steps + steps)
        self.fault = fault
        self.skip_reason = skip_reason
        self.stepper: DistributedStepper | None = None

    def check(self, recipe: Recipe) -> str | None:
        """Why this recipe cannot run with this strategy, or None."""
        if self.skip_reason:
            return self.skip_reason
        if self.run.strategy != "fsdp2":
            return None
        unsupported = fsdp2_unsupported()
        if unsupported:
            return unsupported
        if recipe.make_scaler(self.device) is not None and not dtensor_reduces_found_inf():
            return (f"{recipe.name} needs a loss scaler, and torch {torch.__version__}'s DTensor "
                    "does not combine GradScaler's found-inf across FSDP2 shards; use ddp, a "
                    "newer torch, or a recipe without loss scaling (bf16)")
        return None

    def wrap(self, model: nn.Module, recipe: Recipe) -> nn.Module:
        if self.run.strategy == "ddp":
            return wrap_ddp(model, self.run, self.device, self.counter)
        return wrap_fsdp2(model, self.run, self.device, self.counter)

    def wrap_stepper(self, stepper: Stepper) -> Stepper:
        self.stepper = DistributedStepper(stepper, self.counter, self.measured, self.fault)
        return self.stepper

    def profiler(self) -> Profiler:
        return ParallelProbe(self.run, self.counter, self.stepper)

    @property
    def step(self) -> int | None:
        """The step this rank is in, counted from 1 as in loss curves (None before training)."""
        return self.stepper.calls + 1 if self.stepper is not None else None

    def in_collective(self) -> str | None:
        """The last collective this rank issued (where it stood when a peer went away)."""
        return self.counter.last.describe() if self.counter.last else None
