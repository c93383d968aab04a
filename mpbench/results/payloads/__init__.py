"""Typed profiler results: what a profiler stores under `RunRecord.profiler_results[<name>]`.

Each profiler binds its model next to its Options (`Result = MemoryResult` in
profilers/memory.py) and builds its result through it; the analysis reads these
fields (analysis/access.py) instead of dict paths, so a renamed field breaks the type checker
and the tests (extra fields are refused). The models live here, below the profilers, so that
reading a record never imports torch. Records keep their JSON shape (a profiler's dict, or
{"skipped": reason}); every field a result may lack has a default, and a change of shape is
a schema version step in results/upgrade.py. One module per family: base, memory, numerics,
device (tensor cores, NVML, MFU) and parallel (the torchrun work).
"""

from mpbench.results.payloads.base import ProfileResult, Strict
from mpbench.results.payloads.device import (
    GpmMetrics,
    KernelSummary,
    KernelTime,
    MfuResult,
    NvmlResult,
    TensorCoreResult,
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
    KernelOverlap,
    NodeCard,
    ParallelResult,
    RankReport,
    Spread,
)
from mpbench.results.payloads.read import skip_reason, stored

RESULTS: dict[str, type[ProfileResult]] = {
    "memory": MemoryResult, "max_batch": MaxBatchResult, "numerics": NumericsResult,
    "tensor_cores": TensorCoreResult, "nvml": NvmlResult, "mfu": MfuResult,
    "parallel": ParallelResult,
}
"""The model of each stored profiler result, by the name it is stored under."""

__all__ = [
    "RESULTS",
    "AcrossRanks",
    "CommCall",
    "CommProbe",
    "CommStep",
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
    "Spread",
    "Strict",
    "TensorCoreResult",
    "Underflow",
    "UnderflowSample",
    "skip_reason",
    "stored",
]
