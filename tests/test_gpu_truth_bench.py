"""Issue 14, FP8 GEMM ceiling: timed with and without fast accumulation, the better one kept."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from mpbench.bench import ceiling
from mpbench.bench.config import GemmConfig
from mpbench.bench.gemm import GemmShape, run_gemm
from mpbench.bench.rows import GemmRow
from mpbench.bench.timing import TimingConfig

pytestmark = pytest.mark.unit
FAST = TimingConfig(warmup=1, min_reps=1, max_reps=2, min_time_s=0.001, max_case_s=1.0)


def test_fp8_gemms_are_timed_in_both_accumulation_variants() -> None:
    assert GemmConfig().fp8_fast_accum is None  # default: both
    rows = run_gemm([GemmShape("square", 32, 32, 32)], ["bf16", "fp8"], torch.device("cpu"), FAST)
    assert [(r.dtype, r.variant) for r in rows] == [
        ("bf16", None), ("fp8", "exact_accum"), ("fp8", "fast_accum")]
    only = run_gemm([GemmShape("square", 32, 32, 32)], ["fp8"], torch.device("cpu"), FAST, True)
    assert [r.variant for r in only] == ["fast_accum"]


def test_quick_fp8_ceiling_is_the_faster_accumulation(monkeypatch: pytest.MonkeyPatch) -> None:
    """A GPU's _scaled_mm as stand-in: fast accumulation reaches 1400, exact 1100 TFLOP/s."""
    seen: list[bool] = []

    def fake_measure(shape: GemmShape, key: str, device: torch.device, timing: Any,
                     ref: Any = None, fast_accum: bool = False) -> GemmRow:
        seen.append(fast_accum)
        return GemmRow(dtype="fp8", shape="square", m=shape.m, n=shape.n, k=shape.k,
                       flops=shape.flops, status="ok", numerics_only=False,
                       tflops=1400.0 if fast_accum else 1100.0)

    monkeypatch.setattr(ceiling, "measure_gemm", fake_measure)
    monkeypatch.setattr(ceiling, "_measured", {})
    assert ceiling.quick_ceiling(torch.device("cpu"), "fp8") == pytest.approx(1400.0)
    assert sorted(seen) == [False, True]
