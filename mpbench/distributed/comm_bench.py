"""All-reduce / reduce-scatter / all-gather micro-benchmark per dtype and message size.

Reported as nccl-tests does (see its doc/PERFORMANCE.md):
  size    bytes of the buffer: all-reduce count x itemsize; reduce-scatter the input
          (all ranks' data); all-gather the output (all ranks' data)
  algbw   size / time
  busbw   algbw x 2(n-1)/n for all-reduce, x (n-1)/n for reduce-scatter and all-gather:
          the rate each rank's link moved data, comparable across world sizes.
Time per op is the mean over `iters` back-to-back ops; the median over `reps` repeats is
kept, each rank's worst (max over ranks: an op ends when its last rank ends).
Every op is checked once against the exact answer (the '#wrong' column of nccl-tests).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable
from typing import Any

import torch
import torch.distributed as dist

from mpbench.config.parallel import COMM_DTYPES
from mpbench.distributed.comm import (
    all_gather_tensor,
    bus_factor,
    dtype_name,
    reduce_scatter_tensor,
)
from mpbench.train.measure import synchronize

OPS = ("all_reduce", "reduce_scatter", "all_gather")


def sizes_between(min_bytes: int, max_bytes: int, factor: int) -> list[int]:
    out, size = [], min_bytes
    while size <= max_bytes:
        out.append(size)
        size *= factor
    return out


def buffers(op: str, size: int, dtype: torch.dtype, world: int,
            device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(input, output, size actually used): counts round down to whole elements per rank."""
    per_rank = max(1, size // dtype.itemsize // (world if op != "all_reduce" else 1))
    # zeros: summing them again and again never overflows fp16 into slow inf/NaN paths
    if op == "all_reduce":
        t = torch.zeros(per_rank, dtype=dtype, device=device)
        return t, t, per_rank * dtype.itemsize
    full = torch.zeros(per_rank * world, dtype=dtype, device=device)
    part = torch.zeros(per_rank, dtype=dtype, device=device)
    used = full.numel() * dtype.itemsize
    return (full, part, used) if op == "reduce_scatter" else (part, full, used)


def issue(op: str, inp: torch.Tensor, out: torch.Tensor) -> None:
    if op == "all_reduce":
        dist.all_reduce(inp)
    elif op == "reduce_scatter":
        reduce_scatter_tensor(out, inp)
    else:
        all_gather_tensor(out, inp)


def check(op: str, world: int, dtype: torch.dtype, device: torch.device) -> bool:
    """One op on known data: rank r contributes r+1 everywhere."""
    rank = dist.get_rank()
    inp, out, _ = buffers(op, 64 * world * dtype.itemsize, dtype, world, device)
    inp.fill_(rank + 1)
    issue(op, inp, out)
    if op == "all_gather":
        expected = torch.arange(1, world + 1, device=device, dtype=dtype).repeat_interleave(
            out.numel() // world)
    else:
        expected = torch.full_like(out, world * (world + 1) // 2)
    return bool(torch.equal(out, expected))


def time_op(op: str, inp: torch.Tensor, out: torch.Tensor, iters: int, warmup: int,
            reps: int, device: torch.device) -> float:
    for _ in range(warmup):
        issue(op, inp, out)
    times = []
    for _ in range(reps):
        dist.barrier()
        synchronize(device)
        t0 = time.perf_counter()
        for _ in range(iters):
            issue(op, inp, out)
        synchronize(device)
        times.append((time.perf_counter() - t0) / iters)
    worst = torch.tensor([statistics.median(times)], dtype=torch.float64, device=device)
    dist.all_reduce(worst, op=dist.ReduceOp.MAX)
    return float(worst.item())


def run_comm_bench(device: torch.device, ops: Iterable[str], dtypes: Iterable[str],
                   sizes: list[int], iters: int, warmup: int, reps: int) -> list[dict[str, Any]]:
    world = dist.get_world_size()
    rows = []
    for op in ops:
        for name in dtypes:
            dtype = COMM_DTYPES[name]
            correct = check(op, world, dtype, device)
            for size in sizes:
                inp, out, used = buffers(op, size, dtype, world, device)
                seconds = time_op(op, inp, out, iters, warmup, reps, device)
                algbw = used / seconds / 1e9
                rows.append({
                    "op": op, "dtype": dtype_name(dtype), "size_bytes": used,
                    "count": used // dtype.itemsize, "time_us": seconds * 1e6,
                    "algbw_GBps": algbw, "busbw_GBps": algbw * bus_factor(op, world),
                    "correct": correct,
                })
    return rows
