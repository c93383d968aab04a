"""The suite's `parallel:` section: data-parallel strategy, communication dtype, launch facts.

`strategy` and `grad_comm_dtype` take one value or a list; a list makes a matrix, one run
per combination (strategy x comm dtype), inside one torchrun launch. The world size is the
launch's: one launch cannot change it, so scaling runs the suite once per world size.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, field_validator, model_validator

from mpbench.config import Strict
from mpbench.config.errors import unknown_name

Strategy = Literal["ddp", "fsdp2"]
CommDtype = Literal["fp32", "bf16", "fp16"]
STRATEGIES: tuple[str, ...] = ("ddp", "fsdp2")
COMM_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16,
}
FSDP2_ONLY = ("param_dtype", "reshard_after_forward")
DDP_ONLY = ("bucket_cap_mb",)


def _as_list(value: Any, valid: Any, kind: str) -> Any:
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, str) and item not in valid:
            raise ValueError(unknown_name(kind, item, valid))
    return list(dict.fromkeys(items))  # a value listed twice runs once


def parallel_tag(strategy: str, grad_comm_dtype: str, param_dtype: str | None,
                 world_size: int | None) -> str:
    """The run-id part of a parallel combination: ddp-bf16comm, fsdp2-fp32comm-pbf16-w2.
    Written here only (results/upgrade.py reads it back from the run ids of schema-1 records)."""
    param = f"-p{param_dtype}" if param_dtype else ""
    world = f"-w{world_size}" if world_size else ""
    return f"{strategy}-{grad_comm_dtype}comm{param}{world}"


class ParallelRun(Strict):
    """One resolved combination: what a single run is trained with."""

    strategy: Strategy
    grad_comm_dtype: CommDtype
    world_size: int | None = None
    param_dtype: CommDtype | None = None
    reshard_after_forward: bool | None = None
    bucket_cap_mb: float | None = None
    backend: Literal["auto", "nccl", "gloo"] = "auto"
    timeout_s: float = 300.0
    probe_steps: int = 4

    @property
    def tag(self) -> str:
        """The run-id part: strategy, comm dtype, FSDP2 param dtype, world size."""
        return parallel_tag(self.strategy, self.grad_comm_dtype, self.param_dtype,
                            self.world_size)

    @property
    def comm_dtype(self) -> torch.dtype:
        return COMM_DTYPES[self.grad_comm_dtype]


class ParallelConfig(Strict):
    strategy: list[Strategy] = Field(default_factory=lambda: ["ddp"], min_length=1)  # type: ignore[arg-type]
    """ddp or fsdp2, or a list of both (one run each)."""
    world_size: int | None = Field(None, gt=0)
    """Processes in all; None: whatever torchrun / --nproc starts."""
    grad_comm_dtype: list[CommDtype] = Field(
        default_factory=lambda: ["fp32"], min_length=1)  # type: ignore[arg-type]
    """Dtype gradients are reduced in (DDP comm hook; FSDP2 reduce_dtype); a list makes a matrix."""
    param_dtype: CommDtype | None = None
    """FSDP2 only: MixedPrecisionPolicy.param_dtype (all-gather and compute dtype)."""
    reshard_after_forward: bool | None = None
    """FSDP2 only: free gathered parameters after forward (torch's default: true)."""
    bucket_cap_mb: float | None = Field(None, gt=0)
    """DDP only: gradient bucket size (torch's default: 25)."""
    backend: Literal["auto", "nccl", "gloo"] = "auto"
    """auto: NCCL on GPUs, gloo on CPUs."""
    timeout_s: float = Field(300.0, gt=0, le=86400)
    """A collective waiting longer than this fails the run (a dead or stuck rank)."""
    probe_steps: int = Field(4, ge=0, le=100)
    """Forward+backward pairs with and without gradient sync after the measured window,
    to split compute from exposed communication; 0 skips the probe."""

    @field_validator("strategy", mode="before")
    @classmethod
    def _strategies(cls, value: Any) -> Any:
        return _as_list(value, STRATEGIES, "strategy")

    @field_validator("grad_comm_dtype", mode="before")
    @classmethod
    def _comm_dtypes(cls, value: Any) -> Any:
        return _as_list(value, COMM_DTYPES, "grad_comm_dtype")

    @model_validator(mode="after")
    def _options_match_strategy(self) -> ParallelConfig:
        for key in FSDP2_ONLY:
            if getattr(self, key) is not None and "fsdp2" not in self.strategy:
                raise ValueError(f"{key} is an FSDP2 option but strategy is "
                                 f"{', '.join(self.strategy)}; remove it or add fsdp2 to strategy")
        for key in DDP_ONLY:
            if getattr(self, key) is not None and "ddp" not in self.strategy:
                raise ValueError(f"{key} is a DDP option but strategy is "
                                 f"{', '.join(self.strategy)}; remove it or add ddp to strategy")
        return self

    def runs(self) -> list[ParallelRun]:
        """Strategy outermost, comm dtype innermost; options apply to their strategy only."""
        out = []
        shared = self.model_dump(exclude={"strategy", "grad_comm_dtype", *FSDP2_ONLY, *DDP_ONLY})
        for strategy in self.strategy:
            own = FSDP2_ONLY if strategy == "fsdp2" else DDP_ONLY
            options = {k: getattr(self, k) for k in own}
            for comm in self.grad_comm_dtype:
                out.append(ParallelRun(strategy=strategy, grad_comm_dtype=comm, **shared, **options))
        return out

    def with_world_size(self, world_size: int) -> ParallelConfig:
        return self.model_copy(update={"world_size": world_size})


def batch_problem(batch_size: int, world_size: int) -> str | None:
    """The global batch must split evenly, so every rank trains the same number of rows."""
    if batch_size % world_size:
        lower = (batch_size // world_size) * world_size
        return (f"{batch_size} sequences do not split over world size {world_size}; "
                f"use a multiple of {world_size} (e.g. {lower or world_size} or "
                f"{lower + world_size})")
    return None


__all__ = ["COMM_DTYPES", "ParallelConfig", "ParallelRun", "batch_problem"]
