"""Alignment sweep: the same GEMM with K and N a multiple of 16 and off it by a few.

Tensor-core kernels want K and N divisible by 8 (16-bit) or 16 (FP8); off-by-a-few sizes
fall back to padded or slower kernels (FP8 refuses them). M stays at `base`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from mpbench.bench.dtypes import DtypeKey
from mpbench.bench.gemm import GemmShape, matmul_precision, measure_gemm, operands
from mpbench.bench.rows import AlignmentRow
from mpbench.bench.timing import TimingConfig


def multiple_of(*dims: int, cap: int = 16) -> int:
    """Largest power of two, at most `cap`, that divides every dim."""
    g = math.gcd(*dims)
    m = 1
    while m < cap and g % (m * 2) == 0:
        m *= 2
    return m


def alignment_shapes(base: int, offsets: list[int]) -> list[tuple[int, GemmShape]]:
    return [(off, GemmShape(f"align{base}{off:+d}" if off else f"align{base}", base, base + off,
                            base + off)) for off in offsets]


def add_relative(rows: list[AlignmentRow]) -> list[AlignmentRow]:
    """Each row's TFLOP/s over the offset-0 row of its dtype."""
    aligned = {r.dtype: r.tflops for r in rows if r.offset == 0 and r.tflops}
    return [r.model_copy(update={"relative_to_aligned": r.tflops / aligned[r.dtype]})
            if r.tflops and aligned.get(r.dtype) else r for r in rows]


def run_alignment(base: int, offsets: list[int], dtypes: list[DtypeKey], device: torch.device,
                  timing: TimingConfig, fast_accum: bool = False,
                  on_row: Callable[[AlignmentRow], None] | None = None) -> list[AlignmentRow]:
    rows = []
    for off, shape in alignment_shapes(base, offsets):
        try:
            a, b = operands(shape, device, seed=1)
            with matmul_precision("highest"):
                ref: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = (a, b, a @ b)
        except torch.OutOfMemoryError:
            ref = None
            torch.cuda.empty_cache()
        for key in dtypes:
            g = measure_gemm(shape, key, device, timing, ref, fast_accum)
            row = AlignmentRow(**g.model_dump(), base=base, offset=off,
                               multiple_of=multiple_of(shape.n, shape.k))
            rows.append(row)
            if on_row:
                on_row(row)
        del ref
    return add_relative(rows)
