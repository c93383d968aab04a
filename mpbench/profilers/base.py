"""The profiler interface: small objects attached to the training loop, found by name.

A profiler is one file: a subclass of `Profiler` decorated with `@register_profiler`.
The loop calls the hooks below; time spent inside hooks during the measured window is
timed and taken out of the throughput window, so a profiler cannot inflate step times.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict

from mpbench.registry import registrar
from mpbench.results.payloads import ProfileResult

if TYPE_CHECKING:
    from mpbench.data import TokenSource
    from mpbench.plan.spec import RunSpec
    from mpbench.precision.base import Recipe


class ProfilerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class RunContext:
    """What a profiler may look at. It must not change the training it observes."""

    spec: RunSpec
    device: torch.device
    recipe: Recipe
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    source: TokenSource
    train_step: Callable[[torch.Tensor, torch.Tensor], float]
    """Runs one full training step on (x, y) and returns the loss (used by profile windows)."""
    next_batch: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepInfo:
    step: int
    """0-based index within its phase."""
    phase: str
    """'warmup' or 'measure'."""
    loss: float
    grad_norm: float | None
    loss_scale: float | None
    step_time_s: float
    batch: tuple[torch.Tensor, torch.Tensor]


class Profiler:
    name: ClassVar[str]
    summary: ClassVar[str]
    Options: ClassVar[type[ProfilerOptions]] = ProfilerOptions
    Result: ClassVar[type[ProfileResult]] = ProfileResult
    """What `result` stores (results/payloads/): the analysis reads these fields."""

    def __init__(self, options: ProfilerOptions | None = None) -> None:
        self.options = options if options is not None else self.Options()

    def check(self, device: torch.device) -> str | None:
        """None when the profiler works here, else the reason (recorded, the run goes on)."""
        return None

    def on_start(self, ctx: RunContext) -> None:
        """After the model, optimizer and scaler exist, before warm-up."""

    def on_step_end(self, ctx: RunContext, info: StepInfo) -> None:
        """After every step (warm-up and measured)."""

    def on_hooks(self, ctx: RunContext, edge: str) -> None:
        """'start' before the hooks of a step run (on_step_end of every profiler, periodic
        eval), 'end' after them, the device synchronized: brackets work that is not training."""

    def after_measure(self, ctx: RunContext) -> None:
        """After the measured window, before eval: the place for a torch.profiler window,
        which may call ctx.train_step for extra steps that are never timed."""

    def result(self, ctx: RunContext) -> dict[str, Any]:
        """JSON-able findings, stored under record.profiler_results[name]."""
        return {}


PROFILERS: dict[str, type[Profiler]] = {}


register_profiler = registrar(PROFILERS, "profiler")
"""Class decorator: add the profiler to PROFILERS under its name."""
