"""Micro-benchmarks: GEMM TFLOP/s per dtype, alignment, bandwidth, and the predicted gain.

`mpbench bench` runs them; records live in `<results>/bench/<name>.json` (see store.py).
"""

from mpbench.bench.ceiling import measured_ceiling_tflops
from mpbench.bench.store import BenchRecord, load_bench, load_bench_frame

__all__ = ["BenchRecord", "load_bench", "load_bench_frame", "measured_ceiling_tflops"]
