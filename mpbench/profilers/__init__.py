"""Profilers attached to the training loop. Importing this package registers them all."""

from __future__ import annotations

from mpbench.profilers import (  # noqa: F401  (importing a module registers its profiler)
    max_batch,
    memory,
    mfu,
    numerics,
    nvml,
    tensor_cores,
)
from mpbench.profilers.base import (
    PROFILERS,
    Profiler,
    ProfilerOptions,
    RunContext,
    StepInfo,
    register_profiler,
)

__all__ = ["PROFILERS", "Profiler", "ProfilerOptions", "RunContext", "StepInfo", "register_profiler"]
