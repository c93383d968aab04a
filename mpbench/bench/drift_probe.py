"""A fixed, tiny probe of the machine's speed, timed before and after every run.

A 256x256 fp32 matmul (compute) and a 16 MiB tensor copy (memory bandwidth), each the
mean of 20 repeats after a warm-up, well under a second in all. The mean, not the median:
time lost to other processes on a busy machine is part of what the probe must see (a median
of sub-millisecond ops slips between preemptions and reads an idle machine). If the probe got slower between the
baseline and the current results, the machine changed (load, clocks, thermal state), not
necessarily the code; `mpbench gate --normalize-by-probe` divides it out.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from mpbench.results.schema import ProbeTimes

MATMUL_N = 256
COPY_ELEMENTS = 4 * 2**20  # 16 MiB of fp32
REPEATS = 20


def _mean_ms(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    fn()  # warm: first-touch allocation and kernel selection are not the machine's speed
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return sum(times) / len(times)


def time_probe(device: torch.device, repeats: int = REPEATS) -> ProbeTimes:
    """Time the probe on `device` with the current torch thread setting."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    a = torch.randn(MATMUL_N, MATMUL_N, generator=gen).to(device)
    b = torch.randn(MATMUL_N, MATMUL_N, generator=gen).to(device)
    src = torch.ones(COPY_ELEMENTS, device=device)
    dst = torch.empty_like(src)
    with torch.no_grad():
        matmul = _mean_ms(lambda: torch.mm(a, b), device, repeats)
        copy = _mean_ms(lambda: dst.copy_(src), device, repeats)
    return ProbeTimes(matmul_ms=matmul, copy_ms=copy)
