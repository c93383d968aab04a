"""The measured GEMM ceiling: the best TFLOP/s a dtype reached on this device.

MFU against a datasheet peak says how far a run is from marketing; MFU against the measured
ceiling says how far it is from what this device, driver and torch actually deliver.

The model ceiling is that ceiling on training's own terms: the model's linear-layer GEMMs, at
the run's tokens per step, under the recipe's autocast and matmul mode, on the training's
torch threads. A square GEMM in a storage dtype is not what training runs (on a CPU, autocast
fp16 takes a different kernel than an fp16 tensor's matmul, which is why training "beat" such
a ceiling). It times F.linear with each distinct (in, out) shape of the model's nn.Linear
modules, the weights in their own dtype, inputs as the layer receives them, through the same
code path the forward pass uses. Recipes that replace the linears (FP8, FP4) are not timed
there: their modules keep scaling state that a timing must not touch; they use the bench
ceiling.
"""

from __future__ import annotations

import functools
from collections import Counter
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from mpbench.bench.gemm import GemmShape, fp8_variants, measure_gemm
from mpbench.bench.rows import GemmRow
from mpbench.bench.store import BenchRecord, load_bench
from mpbench.bench.timing import TimingConfig, time_op
from mpbench.dtypes import DTYPE_KEYS, DtypeKey, dtype_key
from mpbench.precision.base import Recipe

# Sizes of the quick measurement when no bench results are at hand. fp16 on a CPU has no fast
# path (about 1 GFLOP/s), so it gets a smaller square to stay within a few seconds.
QUICK_SIZES = {"cuda": 8192, "cpu": 512}
QUICK_SIZE_CPU_FP16 = 256
QUICK_TIMING = TimingConfig(warmup=2, min_reps=3, max_reps=20, min_time_s=0.1, max_case_s=2.0)

_measured: dict[tuple[str, DtypeKey], float | None] = {}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    from mpbench.results.env import cpu_card

    return cpu_card().model


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


# -- the model ceiling -----------------------------------------------------------------------

# One warm-up and one timed call at the least: each call is one layer's forward GEMM, so even
# where a call is slow (fp16 on a CPU) the whole timing costs less than a training step per shape.
MODEL_TIMING = TimingConfig(warmup=1, min_reps=1, max_reps=20, min_time_s=0.05, max_case_s=0.5)


def linear_shapes(model: nn.Module) -> Counter[tuple[int, int, torch.dtype, bool]]:
    """(in_features, out_features, weight dtype, has bias) of every plain nn.Linear, counted."""
    return Counter((m.in_features, m.out_features, m.weight.dtype, m.bias is not None)
                   for m in model.modules() if type(m) is nn.Linear)


@torch.no_grad()
def model_gemm_ceiling(model: nn.Module, recipe: Recipe, device: torch.device, tokens: int,
                       timing: TimingConfig = MODEL_TIMING) -> tuple[float, str] | None:
    """(TFLOP/s, source) of the model's linear GEMM mix as training runs it, or None where the
    recipe converts the linears or the model has none."""
    if recipe.gemm_key() in ("fp8", "fp4") or recipe.numerics_only:
        return None
    shapes = linear_shapes(model)
    if not shapes:
        return None
    flops = seconds = 0.0
    with recipe.activated(), recipe.autocast(device):
        for (k, n, dtype, bias), count in shapes.items():
            x = torch.randn(tokens, k, device=device, dtype=dtype)
            w = torch.randn(n, k, device=device, dtype=dtype)
            b = torch.zeros(n, device=device, dtype=dtype) if bias else None
            t = time_op(functools.partial(F.linear, x, w, b), device, timing)
            flops += 2.0 * tokens * k * n * count
            seconds += t.median_ms * 1e-3 * count
    if seconds <= 0:
        return None
    source = (f"the model's {sum(shapes.values())} linear GEMMs ({len(shapes)} shapes) at "
              f"{tokens} tokens under the {recipe.name} recipe, {torch.get_num_threads()} "
              "torch threads")
    return flops / seconds / 1e12, source
