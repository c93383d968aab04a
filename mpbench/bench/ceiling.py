"""The measured GEMM ceiling: the best TFLOP/s a dtype reached on this device.

MFU against a datasheet peak says how far a run is from marketing; MFU against the measured
ceiling says how far it is from what this device, driver and torch actually deliver.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mpbench.bench.dtypes import DTYPE_KEYS, DtypeKey, device_name, dtype_key
from mpbench.bench.gemm import GemmShape, fp8_variants, measure_gemm
from mpbench.bench.rows import GemmRow
from mpbench.bench.store import BenchRecord, load_bench
from mpbench.bench.timing import TimingConfig

# Sizes of the quick measurement when no bench results are at hand. fp16 on a CPU has no fast
# path (about 1 GFLOP/s), so it gets a smaller square to stay within a few seconds.
QUICK_SIZES = {"cuda": 8192, "cpu": 512}
QUICK_SIZE_CPU_FP16 = 256
QUICK_TIMING = TimingConfig(warmup=2, min_reps=3, max_reps=20, min_time_s=0.1, max_case_s=2.0)

_measured: dict[tuple[str, DtypeKey], float | None] = {}


def best_gemm(records: list[BenchRecord], dtype: str, device_name: str | None = None
              ) -> GemmRow | None:
    """The one best-GEMM selection: the fastest ok, timed, not numerics-only row of `dtype`
    among gemm and alignment records (of the device named `device_name`, if given)."""
    key = dtype_key(dtype)
    best: GemmRow | None = None
    for rec in records:
        if rec.benchmark not in ("gemm", "alignment"):
            continue
        if device_name is not None and rec.device_name != device_name:
            continue
        for row in rec.rows:
            if (isinstance(row, GemmRow) and row.dtype == key and row.status == "ok"
                    and row.tflops and not row.numerics_only
                    and (best is None or row.tflops > (best.tflops or 0.0))):
                best = row
    return best


def best_gemm_per_dtype(records: list[BenchRecord], device_name: str | None = None
                        ) -> dict[DtypeKey, GemmRow]:
    """best_gemm of every dtype the records hold, in the vocabulary's order."""
    out: dict[DtypeKey, GemmRow] = {}
    for key in DTYPE_KEYS:
        row = best_gemm(records, key, device_name)
        if row is not None:
            out[key] = row
    return out


def best_tflops(records: list[BenchRecord], dtype: str, name: str | None = None) -> float | None:
    """TFLOP/s of best_gemm (None when there is none)."""
    row = best_gemm(records, dtype, name)
    return row.tflops if row is not None else None


def quick_ceiling(device: torch.device, dtype: DtypeKey) -> float | None:
    """One square GEMM (fp8: with and without fast accumulation, the better one: training's
    forward GEMMs use it), cached per (device name, dtype) for the life of the process."""
    key = (device_name(device), dtype)
    if key not in _measured:
        size = QUICK_SIZES["cuda" if device.type == "cuda" else "cpu"]
        if device.type != "cuda" and dtype == "fp16":
            size = QUICK_SIZE_CPU_FP16
        found: list[float] = []
        for fast in fp8_variants(None) if dtype == "fp8" else [False]:
            row = measure_gemm(GemmShape("square", size, size, size), dtype, device,
                               QUICK_TIMING, fast_accum=fast)
            if row.status == "ok" and not row.numerics_only and row.tflops:
                found.append(row.tflops)
        _measured[key] = max(found) if found else None
    return _measured[key]


def measured_ceiling_tflops(device: torch.device | str, dtype: str | torch.dtype,
                            results: str | Path | list[BenchRecord] | None = None,
                            measure: bool = True) -> float | None:
    """Best achieved GEMM TFLOP/s of `dtype` on `device`.

    From `results` (a results directory with bench/ records, or loaded records) when they hold
    this device's GEMMs; otherwise, if `measure`, from a quick GEMM measured here. None where the
    dtype cannot run on the device, or only as a numerics-only path (FP8 on a CPU).
    """
    device = torch.device(device)
    key = dtype_key(dtype)
    if results is not None:
        records = load_bench(results) if isinstance(results, str | Path) else results
        found = best_tflops(records, key, device_name(device))
        if found is not None:
            return found
    return quick_ceiling(device, key) if measure else None
