"""Profilers attached to the training loop. Importing this package imports every module in it,
which registers the profilers they define (a new profiler module needs no line here)."""

from __future__ import annotations

import importlib
import pkgutil

from mpbench.profilers.base import (
    PROFILERS,
    Profiler,
    ProfilerOptions,
    RunContext,
    StepInfo,
    register_profiler,
)

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["PROFILERS", "Profiler", "ProfilerOptions", "RunContext", "StepInfo", "register_profiler"]
