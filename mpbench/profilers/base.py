"""The profiler interface: small objects attached to the training loop, found by name.

A profiler is one file: a subclass of `Profiler` decorated with `@register_profiler`, bound
to its result model (results/payloads/), whose `name` it is found and stored by.
The loop calls the hooks below; time spent inside hooks during the measured window is
timed and taken out of the throughput window, so a profiler cannot inflate step times;
a profiler that trains extra steps does so inside `weights_restored`, so they cannot change the
model the run evaluates.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from mpbench.config import Strict
from mpbench.registry import registrar
from mpbench.results.payloads import ProfileResult, Skipped

if TYPE_CHECKING:
    from mpbench.data import TokenSource
    from mpbench.plan.spec import RunSpec
    from mpbench.precision.base import Recipe


class ProfilerOptions(Strict):
    """Options a suite may set for a profiler; subclasses add fields."""


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
    """Its Result's name: what a suite lists and the record stores the result under."""
    summary: ClassVar[str]
    Options: ClassVar[type[ProfilerOptions]] = ProfilerOptions
    Result: ClassVar[type[ProfileResult]] = ProfileResult
    """What `result` returns (results/payloads/): the analysis reads these fields."""
    first_after_window: ClassVar[bool] = False
    """Its after_measure runs before the other profilers': it times steps that must match the
    measured window, so nothing else (a GEMM ceiling benchmark, a memory probe) comes between."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "Result" in cls.__dict__:
            cls.name = cls.Result.name

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

    def result(self, ctx: RunContext) -> ProfileResult | Skipped:
        """The findings, stored under record.profiler_results[name]."""
        return self.Result()


PROFILERS: dict[str, type[Profiler]] = {}


register_profiler = registrar(PROFILERS, "profiler")
"""Class decorator: add the profiler to PROFILERS under its name."""


EXTRA_STATE = "_extra_state"
"""The state_dict key suffix of nn.Module.get_extra_state (torch.nn.modules.module)."""


def _owner(model: nn.Module, name: str) -> nn.Module | None:
    """The module whose get_extra_state produced `name`, or None for a parameter/buffer."""
    path, _, leaf = name.rpartition(".")
    if leaf != EXTRA_STATE:
        return None
    return model.get_submodule(path) if path else model


@contextlib.contextmanager
def weights_restored(model: nn.Module) -> Iterator[int]:
    """Copy parameters, buffers and extra state to host memory, run the block, put them back.

    Profilers that train extra steps after the measured window (profiling windows, batch
    size searches) would otherwise shift the eval loss that follows, and leave FP8 scaling
    state (TransformerEngine's delayed-scaling amax history and scales) as those steps made
    it. Host memory is used so a GPU search sees the same device memory as the run. Yields
    the bytes held.

    Extra state is no view of the module: TE's get_extra_state (pytorch/module/base.py, read
    upstream) serializes its fp8_meta (scale, scale_inv, amax_history per direction) into a
    new CPU tensor on every state_dict() call, so copying into that tensor changes
    nothing. It goes back through the module's set_extra_state, as load_state_dict does.
    """
    saved = {name: t.detach().to("cpu", copy=True) for name, t in model.state_dict().items()
             if isinstance(t, torch.Tensor)}
    held = sum(t.numel() * t.element_size() for t in saved.values())
    try:
        yield held
    finally:
        with torch.no_grad():
            live = model.state_dict()
            for name, value in saved.items():
                owner = _owner(model, name)
                if owner is not None:
                    owner.set_extra_state(value)
                else:
                    live[name].copy_(value)
