"""Micro-benchmarks: GEMM TFLOP/s per dtype, alignment, bandwidth, and the predicted gain.

`mpbench bench` runs them; records live in `<results>/bench/<name>.json` (see store.py).
"""
