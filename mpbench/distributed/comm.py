"""Count the bytes of every gradient / parameter collective, at the call that sends them.

Sizes follow nccl-tests: all-reduce and reduce-scatter count the input buffer, all-gather
the output buffer. `sent` bytes are what each rank puts on the wire under the ring model
(size x 2(n-1)/n for all-reduce, size x (n-1)/n for reduce-scatter and all-gather), the
same factor nccl-tests turns algorithm bandwidth into bus bandwidth with.
"""

# No `from __future__ import annotations` here: DDP checks the comm hook's annotations
# against the real dist.GradBucket / torch.futures.Future classes.
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from mpbench.distributed.compat import all_gather_tensor, reduce_scatter_tensor


def bus_factor(op: str, world_size: int) -> float:
    n = world_size
    if op == "all_reduce":
        return 2 * (n - 1) / n
    if op in ("reduce_scatter", "all_gather"):
        return (n - 1) / n
    raise ValueError(f"unknown collective {op!r}")


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


@dataclass(frozen=True)
class Collective:
    op: str
    dtype: torch.dtype
    numel: int
    """Elements of the nccl-tests 'size' buffer (see the module docstring)."""
    purpose: str

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize

    def describe(self) -> str:
        return f"{self.op} ({self.purpose}, {self.numel} x {dtype_name(self.dtype)})"


@dataclass
class CommCounter:
    """Every collective a run issued; the stepper cuts the log into steps."""

    world_size: int
    calls: list[Collective] = field(default_factory=list)
    last: Collective | None = None

    def record(self, op: str, dtype: torch.dtype, numel: int, purpose: str) -> None:
        call = Collective(op, dtype, numel, purpose)
        self.last = call
        self.calls.append(call)

    def mark(self) -> int:
        return len(self.calls)

    def since(self, mark: int) -> list[Collective]:
        return self.calls[mark:]

    def summarize(self, calls: list[Collective]) -> dict[str, Any]:
        """Bytes by dtype and by (op, dtype) for one step's collectives."""
        by_dtype: Counter[str] = Counter()
        sent_by_dtype: Counter[str] = Counter()
        by_op: dict[str, dict[str, Any]] = {}
        for c in calls:
            name = dtype_name(c.dtype)
            sent = c.nbytes * bus_factor(c.op, self.world_size)
            by_dtype[name] += c.nbytes
            sent_by_dtype[name] += round(sent)
            row = by_op.setdefault(f"{c.op}:{name}", {"op": c.op, "dtype": name, "calls": 0,
                                                      "bytes": 0, "purpose": c.purpose})
            row["calls"] += 1
            row["bytes"] += c.nbytes
        return {
            "bytes": sum(by_dtype.values()),
            "bytes_by_dtype": dict(by_dtype),
            "sent_bytes": sum(sent_by_dtype.values()),
            "sent_bytes_by_dtype": dict(sent_by_dtype),
            "collectives": list(by_op.values()),
        }


# -- DDP: one comm hook for every comm dtype -------------------------------------------
@dataclass
class HookState:
    group: dist.ProcessGroup | None
    world_size: int
    dtype: torch.dtype
    counter: CommCounter


def cast_allreduce_hook(state: HookState, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
    """Cast the bucket to the comm dtype, average with all_reduce, cast back.

    The same algorithm as torch's fp16_compress_hook / bf16_compress_hook, written here
    because bf16_compress_hook refuses gloo, and so the bytes are counted where they leave.
    """
    buffer = bucket.buffer()
    comm = buffer.to(state.dtype) if buffer.dtype != state.dtype else buffer
    comm.div_(state.world_size)  # pre-divide, as the built-in hooks do: SUM then = mean
    state.counter.record("all_reduce", comm.dtype, comm.numel(), "DDP gradient bucket")
    fut = dist.all_reduce(comm, group=state.group, async_op=True).get_future()

    def cast_back(done: torch.futures.Future[list[torch.Tensor]]) -> torch.Tensor:
        reduced = done.value()[0]
        if reduced.data_ptr() != buffer.data_ptr():
            buffer.copy_(reduced)
        return buffer

    return fut.then(cast_back)


# -- FSDP2: counting all-gather / reduce-scatter through its custom-comm API -----------
def fsdp_counting_comms(counter: CommCounter) -> tuple[Any, Any]:
    """(AllGather, ReduceScatter) objects for FSDPModule.set_custom_all_gather / _reduce_scatter.

    They call the same collectives as FSDP2's defaults and record each one.
    """
    from torch.distributed.fsdp._fully_shard._fsdp_api import AllGather, ReduceScatter

    class CountingAllGather(AllGather):
        def allocate(self, size: Any, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
            return torch.empty(*size, dtype=dtype, device=device)

        def __call__(self, output_tensor: torch.Tensor, input_tensor: torch.Tensor,
                     group: dist.ProcessGroup, async_op: bool = False) -> Any:
            counter.record("all_gather", output_tensor.dtype, output_tensor.numel(),
                           "FSDP2 parameter all-gather")
            return all_gather_tensor(output_tensor, input_tensor, group=group,
                                     async_op=async_op)

    class CountingReduceScatter(ReduceScatter):
        def allocate(self, size: Any, *, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
            return torch.empty(*size, dtype=dtype, device=device)

        def __call__(self, output_tensor: torch.Tensor, input_tensor: torch.Tensor,
                     group: dist.ProcessGroup, op: Any, async_op: bool = False) -> Any:
            counter.record("reduce_scatter", input_tensor.dtype, input_tensor.numel(),
                           "FSDP2 gradient reduce-scatter")
            return reduce_scatter_tensor(output_tensor, input_tensor, op=op, group=group,
                                         async_op=async_op)

    return CountingAllGather(), CountingReduceScatter()


# -- replay: the same collectives alone, to time communication without compute ----------
def make_buffers(calls: list[Collective], world_size: int,
                 device: torch.device) -> list[tuple[Collective, torch.Tensor, torch.Tensor]]:
    """Allocate once, so the replay times communication and not allocation."""
    out = []
    for c in calls:
        shard = c.numel // world_size if c.op != "all_reduce" else c.numel
        full = torch.ones(c.numel if c.op == "all_reduce" else shard * world_size,
                          dtype=c.dtype, device=device)
        part = torch.ones(shard, dtype=c.dtype, device=device)
        out.append((c, full, part))
    return out


def replay(buffers: list[tuple[Collective, torch.Tensor, torch.Tensor]],
           group: dist.ProcessGroup | None = None) -> None:
    for call, full, part in buffers:
        if call.op == "all_reduce":
            dist.all_reduce(full, group=group)
        elif call.op == "all_gather":
            all_gather_tensor(full, part, group=group)
        else:
            reduce_scatter_tensor(part, full, group=group)
