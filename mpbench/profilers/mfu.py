"""The mfu profiler: measures the ceiling for the run's GEMM dtype and writes the run's MFU
figures (computed by mpbench.mfu, the one place) into its record.

The ceiling is the best of: the model's own linear GEMMs timed under the recipe's autocast on
the training's threads (mpbench.bench.ceiling), the best GEMM of `mpbench bench`
results for this device (mpbench.bench.ceiling.best_gemm), or a quick square GEMM measured
here when no bench results are at hand. Where training still beats it, the record says "no
valid ceiling" and gives no MFU against it. Achieved TFLOP/s come from the measured steps'
times and the formula FLOPs.
"""

from __future__ import annotations

from typing import Any

import torch

from mpbench.bench.ceiling import measured_ceiling_tflops, model_gemm_ceiling
from mpbench.dtypes import DtypeKey
from mpbench.mfu import against, mfu_figures
from mpbench.models.flops import flops_for
from mpbench.profilers.base import Profiler, RunContext, StepInfo, register_profiler
from mpbench.results.payloads import MfuResult


@register_profiler
class MfuProfiler(Profiler):
    summary = "MFU against the measured GEMM ceiling of the run's dtype, and against the spec peak"
    Result = MfuResult

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.step_s: list[float] = []
        self.ceilings: dict[str, float | None] = {}
        self.ceiling_source: str | None = None
        self.ceiling_error: str | None = None

    def on_step_end(self, ctx: RunContext, info: StepInfo) -> None:
        if info.phase == "measure":
            self.step_s.append(info.step_time_s)

    def dtypes(self, ctx: RunContext) -> list[DtypeKey]:
        key = ctx.recipe.gemm_key()
        return [key, "bf16"] if key in ("fp8", "fp4") else [key]  # attention etc. stay in bf16

    def after_measure(self, ctx: RunContext) -> None:
        if ctx.recipe.numerics_only:
            return
        try:
            for key in self.dtypes(ctx):
                self.ceilings[key] = measured_ceiling_tflops(
                    ctx.device, key, results=ctx.extra.get("bench_results"))
            key = self.dtypes(ctx)[0]
            self.ceiling_source = "best measured GEMM of this dtype" if self.ceilings[key] else None
            tokens = ctx.spec.train.batch_size * ctx.spec.train.seq_len
            own = model_gemm_ceiling(ctx.model, ctx.recipe, ctx.device, tokens)
            if own is not None and own[0] > (self.ceilings.get(key) or 0.0):
                self.ceilings[key], self.ceiling_source = own
        except Exception as exc:  # the ceiling is extra information; never fail the run on it
            self.ceiling_error = f"{type(exc).__name__}: {exc}"

    def result(self, ctx: RunContext) -> MfuResult:
        cfg = ctx.spec.train
        flops = flops_for(ctx.spec.model, ctx.spec.model_facts(ctx.source.vocab_size), cfg.seq_len)
        seconds = sum(self.step_s)
        tokens = cfg.batch_size * cfg.seq_len * len(self.step_s)
        achieved = flops.per_token * tokens / seconds / 1e12 if seconds > 0 and flops.per_token \
            else None
        key = self.dtypes(ctx)[0]
        name = torch.cuda.get_device_name(ctx.device) if ctx.device.type == "cuda" else None
        fig = mfu_figures(achieved, key, ctx.device.type, name, self.ceilings.get(key),
                          self.ceiling_source, ctx.recipe.numerics_only)
        out: dict[str, Any] = {
            **fig.model_dump(), "flops_per_token": flops.per_token,
            "flops_per_token_counter": flops.counter, "flops_method": flops.method,
            "ceilings_tflops": self.ceilings, "torch_threads": torch.get_num_threads()}
        if key in ("fp8", "fp4"):
            out["mfu_vs_bf16_ceiling"] = against(achieved, self.ceilings.get("bf16"))[0]
        if self.ceiling_error:
            out["ceiling_note"] = f"ceiling measurement failed: {self.ceiling_error}"
        if flops.note:
            out["warning"] = flops.note  # formula and FlopCounterMode differ by more than 2%
        return MfuResult.model_validate(out)
