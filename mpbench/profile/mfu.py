"""MFU against the measured GEMM ceiling of the run's dtype on this device (and the spec peak).

The datasheet peak says how far a run is from what is printed; the measured ceiling (the best
GEMM TFLOP/s this device, driver and torch reach in that dtype, from `mpbench bench` results
or a quick GEMM measured here after the timed window) says how far it is from what is
achievable. Achieved TFLOP/s here come from the measured steps' times and the formula FLOPs.
"""

from __future__ import annotations

from typing import Any

import torch

from mpbench.bench.ceiling import measured_ceiling_tflops
from mpbench.bench.dtypes import PEAK_KEY, DtypeKey, dtype_key
from mpbench.hardware import peak_tflops, unknown_peak_note
from mpbench.models.flops import flops_for
from mpbench.profile.base import Profiler, RunContext, StepInfo, register_profiler


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


@register_profiler
class MfuProfiler(Profiler):
    name = "mfu"
    summary = "MFU against the measured GEMM ceiling of the run's dtype, and against the spec peak"

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.step_s: list[float] = []
        self.ceilings: dict[str, float | None] = {}
        self.ceiling_error: str | None = None

    def on_step_end(self, ctx: RunContext, info: StepInfo) -> None:
        if info.phase == "measure":
            self.step_s.append(info.step_time_s)

    def dtypes(self, ctx: RunContext) -> list[DtypeKey]:
        try:
            key = dtype_key(ctx.recipe.family)
        except ValueError:  # a family named otherwise: fall back to the compute dtype
            key = dtype_key(ctx.recipe.compute_dtype)
        return [key, "bf16"] if key == "fp8" else [key]  # FP8 runs keep attention etc. in bf16

    def after_measure(self, ctx: RunContext) -> None:
        if ctx.recipe.numerics_only:
            return
        try:
            for key in self.dtypes(ctx):
                self.ceilings[key] = measured_ceiling_tflops(
                    ctx.device, key, results=ctx.extra.get("bench_results"))
        except Exception as exc:  # the ceiling is extra information; never fail the run on it
            self.ceiling_error = f"{type(exc).__name__}: {exc}"

    def result(self, ctx: RunContext) -> dict[str, Any]:
        cfg = ctx.spec.train
        flops = flops_for(ctx.spec.model, ctx.spec.model_facts(ctx.source.vocab_size), cfg.seq_len)
        formula, counted = flops.per_token, flops.counter
        seconds = sum(self.step_s)
        tokens = cfg.batch_size * cfg.seq_len * len(self.step_s)
        achieved = formula * tokens / seconds / 1e12 if seconds > 0 and formula else None
        key = self.dtypes(ctx)[0]
        out: dict[str, Any] = {
            "dtype": key, "achieved_tflops": achieved, "flops_per_token": formula,
            "flops_per_token_counter": counted, "flops_method": flops.method, "ceilings_tflops": self.ceilings,
            "ceiling_tflops": self.ceilings.get(key),
            "mfu_vs_ceiling": _ratio(achieved, self.ceilings.get(key)),
        }
        if key == "fp8":
            out["mfu_vs_bf16_ceiling"] = _ratio(achieved, self.ceilings.get("bf16"))
        if ctx.device.type == "cuda":
            name = torch.cuda.get_device_name(ctx.device)
            found = peak_tflops(name, PEAK_KEY[key])
            out["spec_peak_tflops"] = found[0] if found else None
            out["mfu_vs_spec"] = _ratio(achieved, found[0]) if found else None
            if found is None:
                out["spec_note"] = unknown_peak_note(name, PEAK_KEY[key])
        else:
            out.update(spec_peak_tflops=None, mfu_vs_spec=None,
                       spec_note="no spec peak table for CPUs; the measured ceiling is the reference")
        ratio = out["mfu_vs_ceiling"]
        if ratio is not None and ratio > 1.0:
            # The quick square GEMM is not this dtype's best shape here (CPU fp16 kernels
            # vary by shape): the "ceiling" is no ceiling, so no MFU against it is claimed.
            out["ceiling_note"] = (f"training achieved {ratio:.2f}x the measured {key} GEMM "
                                   "'ceiling': that GEMM is not this device's best case, "
                                   "run `mpbench bench` for a fuller ceiling")
            out["mfu_vs_ceiling"] = None
        if ctx.recipe.numerics_only:
            out["ceiling_note"] = "numerics-only recipe: its speed is not measured against a ceiling"
        if self.ceiling_error:
            out["ceiling_note"] = f"ceiling measurement failed: {self.ceiling_error}"
        if flops.note:
            out["warning"] = flops.note  # formula and FlopCounterMode differ by more than 2%
        return out
