"""Run a micro-benchmark suite: GEMM, alignment, bandwidth, then the prediction from them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import torch

from mpbench.bench.bandwidth import run_bandwidth
from mpbench.bench.ceiling import best_tflops, device_name
from mpbench.bench.config import MicrobenchSuite
from mpbench.bench.gemm import GemmShape, run_alignment, run_gemm, square_shapes, transformer_shapes
from mpbench.bench.predict import assumed_predictions, run_predictions
from mpbench.bench.rows import BandwidthRow, BenchRow, GemmRow
from mpbench.bench.store import BenchName, BenchRecord
from mpbench.dtypes import dtype_key
from mpbench.results.env import cpu_16bit_note
from mpbench.results.env_card import EnvCard
from mpbench.results.schema import RunRecord

RowFn = Callable[[str, BenchRow], None]


def gemm_shapes(suite: MicrobenchSuite) -> list[GemmShape]:
    shapes = square_shapes(suite.gemm.square)
    for model in suite.gemm.models:
        shapes += transformer_shapes(model, suite.gemm.tokens, suite.gemm.backward_shapes)
    unique: dict[tuple[int, int, int], GemmShape] = {}
    for s in shapes:  # the same dims twice (e.g. two models) are measured once
        unique.setdefault((s.m, s.n, s.k), s)
    return list(unique.values())


def device_notes(device: torch.device, env: EnvCard) -> list[str]:
    if device.type == "cuda":
        gpu = env.gpu
        return [f"{gpu.name if gpu else None} (compute capability {gpu.capability if gpu else None})"]
    return [cpu_16bit_note(env.cpu),
            "FP8 rows on a CPU are numerics only (relative error); they carry no TFLOP/s."]


class _Clock:
    def __init__(self) -> None:
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.t0 = time.perf_counter()


def run_microbench(suite: MicrobenchSuite, device: torch.device, env: EnvCard,
                   quick: bool = False, runs: list[RunRecord] | None = None,
                   on_row: RowFn | None = None) -> Iterator[BenchRecord]:
    """Yield one record per benchmark as soon as it is done (the CLI writes it at once)."""
    threads = torch.get_num_threads()
    if suite.threads and device.type == "cpu":
        torch.set_num_threads(suite.threads)
    try:
        yield from _run(suite, device, env, quick, runs, on_row)
    finally:
        torch.set_num_threads(threads)


def _run(suite: MicrobenchSuite, device: torch.device, env: EnvCard, quick: bool,
         runs: list[RunRecord] | None, on_row: RowFn | None) -> Iterator[BenchRecord]:
    name = device_name(device)
    notes = device_notes(device, env)

    def record(bench: BenchName, rows: list[Any], clock: _Clock, extra: list[str]) -> BenchRecord:
        return BenchRecord(
            benchmark=bench, suite=suite.name, profile=suite.profile, device=str(device),
            device_name=name, quick=quick,
            timing={**suite.timing.model_dump(), "threads": torch.get_num_threads()},
            rows=list(rows), notes=notes + extra, env=env,
            started_at=clock.started_at,
            finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            duration_s=time.perf_counter() - clock.t0,
        )

    def emit(bench: str) -> Callable[[BenchRow], None] | None:
        return (lambda row: on_row(bench, row)) if on_row else None

    gemm_rows: list[GemmRow] = []
    bw_rows: list[BandwidthRow] = []
    if suite.gemm.enabled:
        clock = _Clock()
        gemm_rows = run_gemm(gemm_shapes(suite), list(suite.gemm.dtypes), device, suite.timing,
                             suite.gemm.fp8_fast_accum, emit("gemm"))
        yield record("gemm", gemm_rows, clock, [
            "TFLOP/s = 2*m*n*k / median time; fp32 is strict (TF32 off); rel_error is against a "
            "strict fp32 product of the same inputs; FP8 times the GEMM only (inputs pre-quantised)."])
    if suite.alignment.enabled:
        clock = _Clock()
        a = suite.alignment
        align_rows = run_alignment(a.base, list(a.offsets), list(a.dtypes), device, suite.timing,
                                   bool(suite.gemm.fp8_fast_accum), emit("alignment"))
        gemm_rows += align_rows  # the prediction may use them when no square shape matches
        yield record("alignment", align_rows, clock, [
            "M is fixed at base; K = N = base + offset; relative_to_aligned compares TFLOP/s."])
    if suite.bandwidth.enabled:
        clock = _Clock()
        b = suite.bandwidth
        bw_rows = run_bandwidth(list(b.ops), list(b.dtypes), b.elements, b.hidden, device,
                                suite.timing, emit("bandwidth"))
        yield record("bandwidth", bw_rows, clock, [
            "bytes = least traffic (inputs read once, outputs written once); GB/s = bytes / median time."])
    if suite.prediction.enabled and gemm_rows:
        clock = _Clock()
        pred = assumed_predictions(gemm_rows, bw_rows, list(suite.prediction.gemm_shares))
        extra: list[str] = []
        if runs:
            # A GEMM speedup only predicts training on the device it was measured on.
            others = {r.device_name for r in runs if r.device_name != name}
            runs = [r for r in runs if r.device_name == name]
            if others:
                extra.append(f"training runs of other devices ignored: {', '.join(sorted(others))}")
        if runs:
            records_so_far = [BenchRecord(
                benchmark="gemm", suite=suite.name, profile=suite.profile, device=str(device),
                device_name=name, rows=list(gemm_rows), env=EnvCard(),
                started_at="", finished_at="", duration_s=0.0)]
            pred += run_predictions(gemm_rows, bw_rows, runs,
                                    lambda d: best_tflops(records_so_far, dtype_key(d), name))
        yield record("prediction", pred, clock, [*extra,
            "predicted_amdahl = 1/((1-s)+s/k); predicted_roofline = 1/((1-s)/b+s/k); k = GEMM "
            "speedup, b = bandwidth-bound speedup of the rest, s = GEMM share of baseline step time."])
