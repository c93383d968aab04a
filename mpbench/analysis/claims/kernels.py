"""Micro-benchmark claims (rows written by `mpbench bench`): GEMM speed, bandwidth, alignment.

Bench rows carry a median time per case, not the samples, so the interval here is over
cases (shapes, ops): it says how typical the median speedup is, not the timing noise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mpbench.analysis.claims.registry import APPROX, Evidence, claim
from mpbench.analysis.claims.verdict import (
    Bound,
    ClaimOutcome,
    ClaimRow,
    judged_row,
    not_applicable,
    not_measured,
)
from mpbench.analysis.stats import median_interval
from mpbench.bench.rows import AlignmentRow, BandwidthRow, GemmRow
from mpbench.bench.store import bench_rows

GEMM_TC = Bound(
    "at_least", 2.0, None, "×", ("002",), "2-8x faster",
    "the low end of '2-8x': median FP16/BF16 GEMM TFLOP/s over FP32 across shapes ≥ 2.0×")
BANDWIDTH = Bound(
    "at_least", 2.0 * (1 - APPROX), None, "×", ("002",), "twice as many values",
    "'nearly double' read with 10% slack: 16-bit elements/s at least 1.8× fp32's")
ALIGNMENT = Bound(
    "at_least", 1.05, None, "×", ("002",), "multiples of 8 (FP16/BF16) or 16 (FP8)",
    "'to use tensor cores fully' read as: off-multiple K/N lose ≥ 5% of aligned TFLOP/s "
    "(aligned over misaligned ≥ 1.05×)")
BENCH_HINT = "run `mpbench bench` (suites/microbench.yaml) into this results directory"
SIXTEEN = ("fp16", "bf16")


def _no_tensor_cores(ev: Evidence) -> str | None:
    if ev.device == "cpu":
        return "tensor cores: a CPU has none (the figure is about NVIDIA tensor-core GEMMs)"
    if not ev.caps.tensor_cores:
        return f"tensor cores: {ev.caps.name} has none"
    return None


def _case_outcome(per_case: list[tuple[str, float]], bound: Bound, noun: str,
                  missing: str | None) -> ClaimOutcome:
    """The median ratio over cases; `noun` is singular ("GEMM shape")."""
    n = len(per_case)
    what = f"{noun}{'s' if n != 1 else ''}"
    rows = [ClaimRow(label, value=v, n=1, note="one case") for label, v in per_case]
    est = median_interval([v for _, v in per_case], what)
    head = judged_row(f"median over {n} {what}", est, bound)
    measured = f"{head.text} (median over {n} {what})"
    if missing is not None:
        return not_applicable(missing, measured + " — measured here for context")
    return ClaimOutcome(head.verdict or "inconclusive", measured,
                        f"median {noun} ratio against {bound.text}; {head.note}",
                        [head, *rows], value=est.value, low=est.low, high=est.high,
                        n=len(per_case))


def _best_16bit_ratios(cases: dict[tuple[Any, ...], dict[str, float]],
                       label: Callable[[tuple[Any, ...], str], str]) -> list[tuple[str, float]]:
    """Per case, the faster 16-bit dtype over fp32; cases without both are left out."""
    out = []
    for key, d in cases.items():
        fast = [(d[x] / d["fp32"], x) for x in SIXTEEN if x in d and "fp32" in d]
        if fast:
            ratio, dtype = max(fast)
            out.append((label(key, dtype), ratio))
    return out


def _gemm_table(rows: list[GemmRow]) -> dict[tuple[Any, ...], dict[str, float]]:
    table: dict[tuple[Any, ...], dict[str, float]] = {}
    for r in rows:
        if r.tflops and not r.numerics_only:
            table.setdefault((r.shape, r.m, r.n, r.k, r.variant), {})[r.dtype] = r.tflops
    return table


@claim("gemm-tensor-core", "FP16/BF16 tensor-core matrix multiplies are 2-8x faster than FP32",
       GEMM_TC, "the GEMM micro-benchmark")
def gemm_tensor_core(ev: Evidence, bound: Bound) -> ClaimOutcome:
    table = _gemm_table(bench_rows(ev.bench, GemmRow))
    per_case = _best_16bit_ratios(table, lambda key, dtype:
                                  f"{key[0]} {key[1]}×{key[2]}×{key[3]}: {dtype}/fp32")
    if not per_case:
        return not_measured(f"no GEMM rows with fp32 and fp16/bf16: {BENCH_HINT}")
    return _case_outcome(per_case, bound, "GEMM shape",
                         _no_tensor_cores(ev))


@claim("bandwidth-halving", "Half the bytes moves twice the values: bandwidth-bound work nearly "
       "doubles in throughput", BANDWIDTH, "the bandwidth micro-benchmark")
def bandwidth_halving(ev: Evidence, bound: Bound) -> ClaimOutcome:
    by_case: dict[tuple[Any, ...], dict[str, float]] = {}
    for r in bench_rows(ev.bench, BandwidthRow):
        if r.elements_per_s:
            by_case.setdefault((r.op, r.elements), {})[r.dtype] = r.elements_per_s
    per_case = _best_16bit_ratios(by_case, lambda key, dtype:
                                  f"{key[0]} {key[1]:,} elements: {dtype}/fp32")
    if not per_case:
        return not_measured(f"no bandwidth rows with fp32 and fp16/bf16: {BENCH_HINT}")
    return _case_outcome(per_case, bound, "bandwidth-bound op", None)


def _aligned_multiple(dtype: str) -> int:
    return 16 if dtype == "fp8" else 8


@claim("alignment", "Dimensions must be multiples of 8 (FP16/BF16) or 16 (FP8) to use tensor "
       "cores fully", ALIGNMENT, "the alignment micro-benchmark")
def alignment(ev: Evidence, bound: Bound) -> ClaimOutcome:
    rows = [r for r in bench_rows(ev.bench, AlignmentRow, ok_only=False) if not r.numerics_only]
    aligned = {(r.dtype, r.base): r.tflops for r in rows if r.offset == 0 and r.tflops}
    per_case: list[tuple[str, float]] = []
    refused: list[str] = []
    for r in rows:
        dtype = r.dtype
        if dtype not in (*SIXTEEN, "fp8") or r.offset == 0:
            continue
        if r.multiple_of >= _aligned_multiple(dtype):
            continue  # off the base size but still a multiple: not a misaligned case
        label = f"{dtype} K=N={r.k} (multiple of {r.multiple_of})"
        if r.status in ("unsupported", "failed") and dtype == "fp8":
            refused.append(label)
            continue
        ref = aligned.get((r.dtype, r.base))
        if r.tflops and ref:
            per_case.append((f"{label}: aligned/misaligned", ref / r.tflops))
    if not per_case and not refused:
        return not_measured(f"no alignment rows with an aligned and a misaligned case: {BENCH_HINT}")
    missing = _no_tensor_cores(ev)
    if not per_case:
        text = f"FP8 refused {len(refused)} misaligned shapes"
        return not_applicable(missing, text) if missing else ClaimOutcome(
            "holds", text, "FP8 GEMMs refuse K/N not divisible by 16: " + "; ".join(refused))
    out = _case_outcome(per_case, bound, "misaligned GEMM", missing)
    if refused:
        out.reason += f"; FP8 refused {len(refused)} misaligned shapes (supports the claim)"
    return out
