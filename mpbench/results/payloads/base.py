"""The base of every typed profiler result: unknown fields are refused, a failure is said, and
each result model names the key it is stored under, which registers it."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

from mpbench.config import Strict


class ProfileResult(Strict):
    """What a profiler hands to the record (`Profiler.result`), stored under
    `RunRecord.profiler_results[name]` and read back with `RunRecord.result(Model)`."""

    name: ClassVar[str]
    """The key the result is stored under: the profiler's name (set it on each subclass)."""
    models: ClassVar[dict[str, type[ProfileResult]]] = {}
    """Every result model by `name`, filled as the subclasses are defined."""

    error: str | None = None
    """Set when the profiler failed (the run it observed goes on)."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            return
        known = ProfileResult.models.get(cls.name)
        if known is not None and known.__qualname__ != cls.__qualname__:
            raise TypeError(f"profiler result {cls.name!r} defined twice: {known.__qualname__} "
                            f"and {cls.__qualname__}")
        ProfileResult.models[cls.name] = cls

    @classmethod
    def suite_line(cls) -> str:
        """The suite line that turns the profiler on (the report's "add ..." hints)."""
        return f"profilers: [{cls.name}]"


class StepStats(BaseModel):
    """Step-time statistics of a run (the record's) or of one rank (ParallelResult's)."""

    n: int
    median_ms: float
    mean_ms: float
    stdev_ms: float
    p10_ms: float
    p90_ms: float
    min_ms: float
    max_ms: float


class Skipped(Strict):
    """A profiler that could not run here, with the reason (stored as {"skipped": reason})."""

    skipped: str
