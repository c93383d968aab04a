"""What the training loop calls for a distributed run, as an interface the loop owns.

distributed/session.py's ParallelSession implements it; train never imports distributed
(the layer above it), so one process trains without the torchrun code loaded.
"""

from __future__ import annotations

from typing import Protocol

from torch import nn

from mpbench.precision.base import Recipe
from mpbench.profilers.base import Profiler
from mpbench.train.optim import Stepper


class ParallelHooks(Protocol):
    def check(self, recipe: Recipe) -> str | None:
        """Why this recipe cannot run with this strategy (the run is skipped), or None."""

    def wrap(self, model: nn.Module, recipe: Recipe) -> nn.Module:
        """The model under DDP or FSDP2, before the optimizer sees its parameters."""

    def wrap_stepper(self, stepper: Stepper) -> Stepper:
        """A stepper that averages the loss over ranks and counts communication per step."""

    def profiler(self) -> Profiler:
        """The probe that stores profiler_results["parallel"]."""
