"""Typed profiler results: what a profiler hands to the record, stored under
`RunRecord.profiler_results[<name>]` and read back as the same type with `RunRecord.result`.

Each result model names the key it is stored under (`name = "memory"`), which registers it
(ProfileResult.models); the profiler binds it (`Result = MemoryResult` in profilers/memory.py)
and returns it from `result`. The models live here, below the profilers, so that reading a
record never imports torch. Records keep their JSON shape (a result's set fields, or
{"skipped": reason}); every field a result may lack has a default, and a change of shape is
a schema version step in results/upgrade.py. Every module of this package is imported here,
so a new result model needs no line anywhere else.
"""

import importlib
import pkgutil

from mpbench.results.payloads.base import ProfileResult, Skipped, StepStats, Strict
from mpbench.results.payloads.device import (
    GpmMetrics,
    KernelSummary,
    KernelTime,
    MfuResult,
    NvmlResult,
    TensorCoreResult,
)
from mpbench.results.payloads.fingerprint import (
    FingerprintResult,
    ScaleProbe,
    Software,
    StepPoint,
    TensorProbe,
)
from mpbench.results.payloads.memory import MaxBatchResult, MemoryResult
from mpbench.results.payloads.numerics import (
    NumericsResult,
    Overflow,
    OverflowEvent,
    Underflow,
    UnderflowSample,
)
from mpbench.results.payloads.parallel import (
    AcrossRanks,
    CommCall,
    CommProbe,
    CommStep,
    CommUse,
    KernelOverlap,
    NodeCard,
    ParallelResult,
    RankReport,
    Spread,
)

for _module in pkgutil.iter_modules(__path__):  # the models register as they are defined
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "AcrossRanks",
    "CommCall",
    "CommProbe",
    "CommStep",
    "CommUse",
    "FingerprintResult",
    "GpmMetrics",
    "KernelOverlap",
    "KernelSummary",
    "KernelTime",
    "MaxBatchResult",
    "MemoryResult",
    "MfuResult",
    "NodeCard",
    "NumericsResult",
    "NvmlResult",
    "Overflow",
    "OverflowEvent",
    "ParallelResult",
    "ProfileResult",
    "RankReport",
    "ScaleProbe",
    "Skipped",
    "Software",
    "Spread",
    "StepPoint",
    "StepStats",
    "Strict",
    "TensorCoreResult",
    "TensorProbe",
    "Underflow",
    "UnderflowSample",
]
