"""Profiler "fingerprint": the numerics of a short fixed-seed, fixed-data run, for the gate.

Every step it keeps the loss and the global gradient norm. At the probe steps it watches the
training step itself (no extra forward: an FP8 recipe's scaling state sees exactly what it
would see without it): hooks on every leaf module's output take the activation amax and, on
the way back, the activation-gradient amax, and the shares of elements that underflow or
overflow each watched format. FP8 recipes add the scale each FP8 operand used. The hooks
only read tensors, so the run is bit-for-bit the run without them; they exist only during
the probe steps. `mpbench fingerprint run` attaches this profiler (analysis/fingerprint.py
compares two of its results).
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import Field
from torch import nn

from mpbench.profilers.base import (
    Profiler,
    ProfilerOptions,
    RunContext,
    StepInfo,
    register_profiler,
)
from mpbench.profilers.grad_probe import leaf_modules
from mpbench.results.env import cpu_card, gpu_card, package_version
from mpbench.results.payloads import FingerprintResult


@dataclass(frozen=True)
class Format:
    """A number format's range: below `tiny` (smallest subnormal) a value flushes to zero."""

    name: str
    tiny: float
    max: float
    scaled: bool
    """FP8: judged after per-tensor scaling to the format's range (scale = max / amax)."""


FORMATS: dict[str, Format] = {
    "fp32": Format("fp32", 2.0**-149, float(torch.finfo(torch.float32).max), False),
    "fp16": Format("fp16", 2.0**-24, 65504.0, False),
    "bf16": Format("bf16", 2.0**-133, float(torch.finfo(torch.bfloat16).max), False),
    "e4m3": Format("e4m3", 2.0**-9, 448.0, True),
    "e5m2": Format("e5m2", 2.0**-16, 57344.0, True),
}
RECIPE_FORMATS = {"fp16": ["fp16"], "bf16": ["bf16"], "fp8": ["e4m3", "e5m2", "bf16"]}
"""The formats a recipe family computes in (E4M3 forward, E5M2 gradients, BF16 around the FP8
GEMMs); fp32 and tf32 runs store in fp32."""


def formats_for(family: str) -> list[str]:
    return RECIPE_FORMATS.get(family, ["fp32"])


class FingerprintOptions(ProfilerOptions):
    probe_steps: list[int] = Field(default_factory=lambda: [0, 1, 2, 4, 7], description=(
        "0-based steps (warm-up counted) whose layers are probed; steps past the run's end "
        "are ignored"))
    reference_seed: int | None = Field(None, description=(
        "the fingerprint's own seed (runs of other seeds are its FP32 seed band); default: "
        "this run's seed"))


def _text_or_float(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


def software() -> dict[str, Any]:
    """The versions and settings that can change a run's numbers."""
    import numpy

    cuda = torch.cuda.is_available()
    gpu = gpu_card() if cuda else None
    return {
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": str(torch.backends.cudnn.version()) if cuda else None,
        "transformer_engine": (package_version("transformer-engine")
                               or package_version("transformer_engine")),
        "torchao": package_version("torchao"), "python": platform.python_version(),
        "numpy": numpy.__version__,
        "device": torch.cuda.get_device_name() if cuda else cpu_card().model,
        "driver": gpu.driver if gpu else None,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
    }


class _Tap:
    """One probed tensor: 0-d device tensors until the step ends (one host sync then)."""

    def __init__(self, layer: str, tensor: str, order: int, x: torch.Tensor,
                 formats: list[Format]) -> None:
        self.layer, self.tensor, self.order = layer, tensor, order
        self.dtype = str(x.dtype).removeprefix("torch.")
        self.elements = x.numel()
        a = x.detach().float().abs()
        self.amax = a.amax() if self.elements else torch.zeros(())
        self.counts: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        bad = ~torch.isfinite(a)
        for f in formats:
            # FP8: x * (max / amax) below tiny  <=>  |x| below tiny * amax / max
            tiny = f.tiny * self.amax / f.max if f.scaled else f.tiny
            under = (a < tiny).sum()
            over = bad.sum() if f.scaled else ((a > f.max) | bad).sum()
            self.counts[f.name] = (under, over)

    def stored(self, step: int, values: Iterator[float]) -> dict[str, Any]:
        """Reads this tap's values from `values` in the order of scalars()."""
        n = max(self.elements, 1)
        amax = next(values)
        shares = {k: (next(values) / n, next(values) / n) for k in self.counts}
        return {"step": step, "layer": self.layer, "tensor": self.tensor, "order": self.order,
                "dtype": self.dtype, "amax": _text_or_float(amax), "elements": self.elements,
                "underflow": {k: u for k, (u, _) in shares.items()},
                "overflow": {k: o for k, (_, o) in shares.items()}}

    def scalars(self) -> list[torch.Tensor]:
        return [self.amax, *(t for pair in self.counts.values() for t in pair)]


@register_profiler
class Fingerprint(Profiler):
    summary = ("numerics fingerprint for the gate: loss and grad norm per step; per layer at "
               "probe steps activation/gradient amax, under/overflow shares, FP8 scales")
    Options = FingerprintOptions
    Result = FingerprintResult
    options: FingerprintOptions

    def __init__(self, options: ProfilerOptions | None = None) -> None:
        super().__init__(options)
        self.step = 0
        self.steps: list[dict[str, Any]] = []
        self.tensors: list[dict[str, Any]] = []
        self.scales: list[dict[str, Any]] = []
        self.taps: list[_Tap] = []
        self.handles: list[Any] = []
        self.formats: list[Format] = []
        self.probed: list[int] = []
        self.overhead_s = 0.0

    def on_start(self, ctx: RunContext) -> None:
        self.formats = [FORMATS[f] for f in formats_for(ctx.recipe.family)]
        if 0 in self.options.probe_steps:
            self._arm(ctx.model)

    def on_step_end(self, ctx: RunContext, info: StepInfo) -> None:
        t0 = time.perf_counter()
        norm = info.grad_norm if info.grad_norm is not None else self._grad_norm(ctx.model)
        self.steps.append({"step": self.step, "loss": _text_or_float(info.loss),
                           "grad_norm": None if norm is None else _text_or_float(norm)})
        if self.handles:
            self._disarm()
            self._collect(ctx)
        self.step += 1
        if self.step in self.options.probe_steps:
            self._arm(ctx.model)
        self.overhead_s += time.perf_counter() - t0

    def result(self, ctx: RunContext) -> FingerprintResult:
        self._disarm()
        return FingerprintResult.model_validate({
            "reference_seed": (self.options.reference_seed if self.options.reference_seed
                               is not None else ctx.spec.seed),
            "seed": ctx.spec.seed, "repeat": ctx.spec.repeat,
            "formats": [f.name for f in self.formats], "probe_steps": self.probed,
            "steps": self.steps, "tensors": self.tensors, "scales": self.scales,
            "software": software(), "overhead_s": self.overhead_s,
        })

    # -- work ----------------------------------------------------------------------------
    @staticmethod
    def _grad_norm(model: nn.Module) -> float | None:
        grads = [p.grad.detach().float() for p in model.parameters() if p.grad is not None]
        if not grads:
            return None
        return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g)
                                                           for g in grads])))

    def _arm(self, model: nn.Module) -> None:
        """Hooks for the coming step: outputs in forward order, gradients as they arrive."""
        seen: dict[str, int] = {}
        arrivals, produced = [0], [0]

        def grad_hook(layer: str) -> Any:
            def hook(grad: torch.Tensor) -> None:
                self.taps.append(_Tap(layer, "gradient", arrivals[0], grad, self.formats))
                arrivals[0] += 1
            return hook

        def forward_hook(name: str) -> Any:
            def hook(module: nn.Module, args: Any, output: Any) -> None:
                out = output if isinstance(output, torch.Tensor) else next(
                    (o for o in output if isinstance(o, torch.Tensor)), None) \
                    if isinstance(output, (tuple, list)) else None
                if out is None or not out.is_floating_point():
                    return
                calls = seen.get(name, 0)  # a module called twice (or recomputed) keeps both
                seen[name] = calls + 1
                layer = name if calls == 0 else f"{name}#{calls}"
                self.taps.append(_Tap(layer, "activation", produced[0], out, self.formats))
                produced[0] += 1
                if out.requires_grad:
                    out.register_hook(grad_hook(layer))
            return hook

        self.handles = [m.register_forward_hook(forward_hook(n)) for n, m in leaf_modules(model)]

    def _disarm(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

    def _collect(self, ctx: RunContext) -> None:
        taps, self.taps = self.taps, []
        self.probed.append(self.step)
        scalars = [t for tap in taps for t in tap.scalars()]
        if scalars:
            values = iter(torch.stack([s.float().reshape(()) for s in scalars]).tolist())
            self.tensors += [tap.stored(self.step, values) for tap in taps]
        self.scales += self._fp8_scales(ctx)

    def _fp8_scales(self, ctx: RunContext) -> list[dict[str, Any]]:
        recipe = ctx.recipe
        is_fp8 = getattr(recipe, "is_fp8_module", None)
        telemetry = getattr(recipe, "telemetry", None)
        if recipe.family != "fp8" or is_fp8 is None or telemetry is None:
            return []
        named = [(n, m) for n, m in ctx.model.named_modules() if n and is_fp8(m)]
        seen = telemetry(named) if named else {}
        out = []
        for layer, stats in seen.get("layers", {}).items():
            for key, value in stats.items():
                if not key.endswith("_scale"):
                    continue
                operand = key.removesuffix("_scale")
                amax = stats.get(f"{operand}_amax")
                out.append({"step": self.step, "layer": layer, "operand": operand,
                            "scale": _text_or_float(float(value)),
                            "amax": None if amax is None else _text_or_float(float(amax))})
        return out
