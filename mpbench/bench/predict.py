"""Predict the end-to-end gain of a precision from its measured GEMM speedup (Amdahl/roofline).

If GEMMs take a share s of the baseline's step time and run k times faster, the step runs
1 / ((1 - s) + s / k) times faster (Amdahl: the rest is unchanged), or 1 / ((1 - s) / b + s / k)
when the bandwidth-bound rest also moves b times more elements per second (roofline).
The prediction sits next to the measured training speedup so the report can show the gap.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from mpbench.bench.rows import BandwidthRow, GemmRow, PredictionRow
from mpbench.mfu import against
from mpbench.results.payloads import TensorCoreResult
from mpbench.results.recipe_card import recipe_card
from mpbench.results.schema import RunRecord

# (precision, baseline) pairs. FP8 recipes keep the non-GEMM rest in bf16, so against fp32 the
# rest gains what bf16 gains, and against bf16 it gains nothing.
PAIRS: tuple[tuple[str, str], ...] = (
    ("tf32", "fp32"), ("fp16", "fp32"), ("bf16", "fp32"), ("fp8", "bf16"), ("fp8", "fp32"),
)
REST_DTYPE = {"tf32": None, "fp16": "fp16", "bf16": "bf16", "fp8": "bf16"}


def amdahl(share: float, speedup: float) -> float:
    return 1.0 / ((1.0 - share) + share / speedup)


def roofline(share: float, gemm_speedup: float, other_speedup: float) -> float:
    return 1.0 / ((1.0 - share) / other_speedup + share / gemm_speedup)


def gemm_speedup(rows: list[GemmRow], dtype: str, baseline: str) -> tuple[float, str] | None:
    """Median over shapes measured in both dtypes of the TFLOP/s ratio."""
    def timed(d: str) -> dict[tuple[int, int, int], float]:
        return {(r.m, r.n, r.k): r.tflops for r in rows
                if r.dtype == d and r.status == "ok" and r.tflops and not r.numerics_only}
    a, b = timed(dtype), timed(baseline)
    common = sorted(set(a) & set(b))
    if not common:
        return None
    ratio = statistics.median(a[s] / b[s] for s in common)
    return ratio, f"median over {len(common)} shapes of {dtype}/{baseline} GEMM TFLOP/s"


def rest_speedup(rows: list[BandwidthRow], dtype: str, baseline: str) -> float:
    """Median elements/s ratio of the bandwidth-bound ops for the rest of the step (1 if unknown)."""
    def ratio(d: str | None) -> float:
        vals = [r.vs_fp32 for r in rows if d and r.dtype == d and r.vs_fp32]
        return statistics.median(vals) if vals else 1.0
    target, base = REST_DTYPE.get(dtype), REST_DTYPE.get(baseline)
    return ratio(target) / ratio(base)


def _is_gemm_bucket(name: str) -> bool:
    low = name.lower()
    return low == "mm" or any(w in low for w in ("gemm", "matmul", "nvjet", "addmm", "bmm"))


def _bucket_items(buckets: Any) -> list[tuple[str, float]]:
    """(name, share or time) pairs from a dict or list form of the tensor_cores buckets."""
    def value(v: Any) -> float | None:
        if isinstance(v, int | float):
            return float(v)
        if isinstance(v, dict):
            for k in ("share", "fraction", "time_us", "time_ms", "time_s", "us", "ms"):
                if isinstance(v.get(k), int | float):
                    return float(v[k])
        return None

    items: list[tuple[str, float]] = []
    if isinstance(buckets, dict):
        pairs = list(buckets.items())
    elif isinstance(buckets, list):
        pairs = [(b.get("name") or b.get("bucket"), b) for b in buckets if isinstance(b, dict)]
    else:
        return []
    for name, v in pairs:
        x = value(v)
        if isinstance(name, str) and x is not None:
            items.append((name, x))
    return items


def gemm_share_from_buckets(buckets: Any) -> float | None:
    """Share of profiled time in GEMM buckets (attention kernels are not counted as GEMMs)."""
    items = _bucket_items(buckets)
    total = sum(v for _, v in items)
    if total <= 0:
        return None
    return sum(v for n, v in items if _is_gemm_bucket(n)) / total


def gemm_share_from_record(record: RunRecord, ceiling_tflops: float | None) -> tuple[float, str] | None:
    """The baseline run's GEMM time share: from its kernel profile, else from its FLOPs."""
    profile = record.result(TensorCoreResult)
    if profile is not None and profile.buckets:
        share = gemm_share_from_buckets(profile.buckets)
        if share is not None:
            return share, f"tensor_cores profile of run {record.run_id}"
    share, _ = against(record.achieved_tflops, ceiling_tflops)  # MFU against the ceiling
    if share is not None and record.achieved_tflops and ceiling_tflops:
        return share, (f"FLOP share of run {record.run_id}: model TFLOP/s {record.achieved_tflops:.3g} "
                       f"at the measured GEMM ceiling {ceiling_tflops:.3g} (upper bound)")
    return None


def predict(gemm_rows: list[GemmRow], bw_rows: list[BandwidthRow], dtype: str, baseline: str,
            share: float, share_source: str, measured: float | None = None,
            measured_source: str | None = None) -> PredictionRow:
    row = PredictionRow(dtype=dtype, baseline=baseline, gemm_share=share, share_source=share_source,
                        measured_speedup=measured, measured_source=measured_source)
    found = gemm_speedup(gemm_rows, dtype, baseline)
    if found is None:
        return row.model_copy(update={"status": "skipped", "reason": (
            f"no timed GEMMs of both {dtype} and {baseline} on this device (skipped, failed or "
            "numerics only)")})
    k, basis = found
    b = rest_speedup(bw_rows, dtype, baseline)
    return row.model_copy(update={"gemm_speedup": k, "gemm_speedup_basis": basis, "other_speedup": b,
                                  "predicted_amdahl": amdahl(share, k),
                                  "predicted_roofline": roofline(share, k, b)})


def assumed_predictions(gemm_rows: list[GemmRow], bw_rows: list[BandwidthRow],
                        shares: list[float]) -> list[PredictionRow]:
    """A sweep over assumed GEMM shares, for when no training run is at hand."""
    return [predict(gemm_rows, bw_rows, d, b, s, f"assumed GEMM share {s:.0%}")
            for d, b in PAIRS for s in shares]


def _median_tps(runs: list[RunRecord]) -> float | None:
    vals = [r.tokens_per_s for r in runs if r.status == "ok" and r.tokens_per_s]
    return statistics.median(vals) if vals else None


def run_predictions(gemm_rows: list[GemmRow], bw_rows: list[BandwidthRow], runs: list[RunRecord],
                    ceiling: Callable[[str], float | None]) -> list[PredictionRow]:
    """Predicted next to measured, per model, for each pair whose baseline was trained.

    `ceiling(dtype)` gives the measured GEMM ceiling used when a run has no kernel profile.
    """
    out = []
    for model in sorted({r.model for r in runs}):
        by_family: dict[str, list[RunRecord]] = {}
        for r in runs:
            if r.model == model and r.status == "ok":
                by_family.setdefault(str(recipe_card(r).family), []).append(r)
        for dtype, baseline in PAIRS:
            base_runs = by_family.get(baseline)
            if not base_runs:
                continue
            found = gemm_share_from_record(base_runs[0], ceiling(baseline))
            if found is None:
                continue
            target = [r for r in by_family.get(dtype, []) if not recipe_card(r).numerics_only]
            base_tps, tps = _median_tps(base_runs), _median_tps(target)
            measured = tps / base_tps if tps and base_tps else None
            src = (f"{model}: median tokens/s of {len(target)} {dtype} over {len(base_runs)} "
                   f"{baseline} runs") if measured else None
            row = predict(gemm_rows, bw_rows, dtype, baseline, found[0], found[1], measured, src)
            if row.status == "ok" or measured is not None:  # neither predicted nor measured: noise
                out.append(row)
    return out
