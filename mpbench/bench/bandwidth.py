"""Bandwidth-bound ops per dtype: bytes moved per second and elements per second.

These ops do next to no arithmetic per byte, so their speed is memory traffic: halving the
bytes per element should nearly double elements/s (the bandwidth-halving claim).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F

from mpbench.bench.gemm import STORAGE
from mpbench.bench.rows import BandwidthRow
from mpbench.bench.timing import TimingConfig, time_op
from mpbench.dtypes import DtypeKey

BandwidthOp = Literal["add", "mul", "layer_norm"]


def op_bytes(op: BandwidthOp, elements: int, hidden: int, element_size: int) -> int:
    """The least traffic the op needs: every input read once and every output written once."""
    if op in ("add", "mul"):
        return 3 * elements * element_size  # two inputs, one output
    return (2 * elements + 2 * hidden) * element_size  # x in, y out, weight and bias


def op_fn(op: BandwidthOp, elements: int, hidden: int, dtype: torch.dtype, device: torch.device
          ) -> Callable[[], object]:
    gen = torch.Generator(device=device).manual_seed(2)
    if op in ("add", "mul"):
        a = torch.randn(elements, generator=gen, device=device).to(dtype)
        b = torch.randn(elements, generator=gen, device=device).to(dtype)
        out = torch.empty_like(a)
        f = torch.add if op == "add" else torch.mul
        return lambda: f(a, b, out=out)
    x = torch.randn(elements // hidden, hidden, generator=gen, device=device).to(dtype)
    w = torch.ones(hidden, dtype=dtype, device=device)
    bias = torch.zeros(hidden, dtype=dtype, device=device)
    return lambda: F.layer_norm(x, (hidden,), w, bias)


def measure_op(op: BandwidthOp, key: DtypeKey, elements: int, hidden: int, device: torch.device,
               timing: TimingConfig) -> BandwidthRow:
    dtype = STORAGE.get(key, torch.uint8)  # fp4: no storage dtype for these ops (skipped below)
    if op == "layer_norm":
        elements -= elements % hidden  # whole rows only
    size = torch.empty((), dtype=dtype).element_size()
    nbytes = op_bytes(op, elements, hidden, size)
    row = BandwidthRow(dtype=key, op=op, elements=elements, bytes=nbytes, bytes_per_element=size)
    if key not in ("fp32", "fp16", "bf16"):
        return row.model_copy(update={"status": "skipped",
                                      "reason": f"{key} is not a storage dtype for these ops"})
    try:
        t = time_op(op_fn(op, elements, hidden, dtype, device), device, timing)
    except torch.OutOfMemoryError as exc:
        torch.cuda.empty_cache()
        return row.model_copy(update={"status": "oom", "reason": str(exc).splitlines()[0]})
    except RuntimeError as exc:
        return row.model_copy(update={"status": "failed", "reason": str(exc).splitlines()[0]})
    seconds = t.median_ms * 1e-3
    return row.model_copy(update={"time_ms": t.median_ms, "spread": t.spread, "reps": t.reps,
                                  "gbps": nbytes / seconds / 1e9, "elements_per_s": elements / seconds})


def add_vs_fp32(rows: list[BandwidthRow]) -> list[BandwidthRow]:
    base = {r.op: r.elements_per_s for r in rows if r.dtype == "fp32" and r.elements_per_s}
    return [r.model_copy(update={"vs_fp32": r.elements_per_s / base[r.op]})
            if r.elements_per_s and base.get(r.op) else r for r in rows]


def run_bandwidth(ops: list[BandwidthOp], dtypes: list[DtypeKey], elements: int, hidden: int,
                  device: torch.device, timing: TimingConfig,
                  on_row: Callable[[BandwidthRow], None] | None = None) -> list[BandwidthRow]:
    rows = []
    for op in ops:
        for key in dtypes:
            row = measure_op(op, key, elements, hidden, device, timing)
            rows.append(row)
            if on_row:
                on_row(row)
    return add_vs_fp32(rows)
