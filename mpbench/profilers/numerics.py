"""Profiler "numerics": loss scale, skipped steps, gradient norm, underflow and overflow.

Every step it only compares two floats (the loss scale before and after the step), so
skipped (overflowed) steps are never missed. Every `every` steps it probes: a forward
and backward of the live model on the step's own batch, under the recipe's autocast and
loss scale, with hooks on each layer's output (see grad_probe), and the same pass on an
FP32 copy of the model without autocast. The probe runs after the step, outside the
timed window, asks autograd only for activation gradients (parameter .grad, the
optimizer and the scaler are untouched), so training is bit-for-bit what it would be
without the profiler. Its cost is reported as overhead_s.

Note that the probe sees the weights after the step's update (before it, for a skipped
step, whose update did not happen).
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
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
from mpbench.profilers.grad_probe import (
    FP16_MAX,
    FP16_TINY,
    SIXTEEN_BIT,
    ProbePass,
    probe,
    underflow,
)
from mpbench.results.payloads import NumericsResult


class NumericsOptions(ProfilerOptions):
    every: int = Field(50, gt=0, description="probe every k steps (and at step 1); the loss "
                       "scale is checked at every step")
    reference: bool = Field(True, description="also run an FP32 copy of the model on the same "
                            "batch, for the underflow comparison")
    max_elements: int = Field(65536, gt=0, description="gradient elements sampled per layer")
    max_events: int = Field(50, gt=0, description="inf/NaN and above-FP16-max events kept")
    locate_skips: int = Field(5, ge=0, description="skipped steps re-probed to find the layer "
                              "that overflowed")
    probe_fp8: bool = Field(False, description="probe FP8 recipes too; off because their "
                            "scaling state (TE delayed scaling's amax history) would see the "
                            "probe's forward and change training")


def finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def finite_max(values: list[float]) -> float | None:
    return max((v for v in values if math.isfinite(v)), default=None)


def _fp32_copy(ctx: RunContext) -> tuple[nn.Module, str]:
    """A plain-torch FP32 model with the live model's weights, built fresh when the names
    match (so recipe-swapped linear layers do not quantize the reference), else a copy."""
    from mpbench.models.entry import build_entry

    live = dict(ctx.model.named_parameters())
    fresh = build_entry(ctx.spec.model, ctx.spec.model_facts(ctx.source.vocab_size), ctx.spec.seed)
    ref_params = dict(fresh.named_parameters())
    if ref_params.keys() == live.keys() and all(
        ref_params[k].shape == live[k].shape for k in live
    ):
        return fresh.to(ctx.device), "fp32 reference model (torch.nn layers), live weights"
    return copy.deepcopy(ctx.model).float(), "deep copy of the live model in fp32 (recipe layers kept)"


@contextlib.contextmanager
def strict_fp32() -> Any:
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


@register_profiler
class Numerics(Profiler):
    summary = ("loss scale, skipped steps, grad norm; activation-gradient underflow vs an FP32 "
               "reference; activation/gradient amax vs 65504 and inf/NaN events")
    Options = NumericsOptions
    Result = NumericsResult
    options: NumericsOptions

    def __init__(self, options: ProfilerOptions | None = None) -> None:
        super().__init__(options)
        self.step = 0
        self.last_scale: float | None = None
        self.loss_scale: list[list[float]] = []
        self.skipped: list[int] = []
        self.grad_norm: list[list[float | None]] = []
        self.samples: list[dict[str, Any]] = []
        self.amax: list[list[float | None]] = []
        self.events: list[dict[str, Any]] = []
        self.events_dropped = 0
        self.seen: set[tuple[str, str]] = set()
        self.reference: nn.Module | None = None
        self.reference_note = "no probe ran" if self.options.reference else "off (options)"
        self.overhead_s = 0.0
        self.train_s = 0.0
        self.probes = 0
        self.probe_error: str | None = None
        """Why probing stopped (it never stops the run)."""
        self.located = 0
        self.act_max: tuple[float, str | None] = (-math.inf, None)  # None in the result until seen
        self.grad_max: tuple[float, str | None, float] = (-math.inf, None, 1.0)

    # -- hooks -------------------------------------------------------------------------
    def on_start(self, ctx: RunContext) -> None:
        t0 = time.perf_counter()
        if ctx.scaler is not None and ctx.scaler.is_enabled():
            self.last_scale = float(ctx.scaler.get_scale())
            self.loss_scale.append([0, self.last_scale])
        self.overhead_s += time.perf_counter() - t0

    def on_step_end(self, ctx: RunContext, info: StepInfo) -> None:
        t0 = time.perf_counter()
        self.step += 1
        self.train_s += info.step_time_s
        used_scale = self.last_scale if self.last_scale is not None else 1.0
        sampled = self.step == 1 or self.step % self.options.every == 0
        locate = False
        if info.loss_scale is not None and self.last_scale is not None:
            if info.loss_scale < self.last_scale:  # GradScaler backs off only on inf/NaN grads
                self.skipped.append(self.step)
                locate = self.located < self.options.locate_skips
                self.located += int(locate)
            if info.loss_scale != self.last_scale or sampled:
                self.loss_scale.append([self.step, info.loss_scale])
            self.last_scale = info.loss_scale
        if sampled:
            norm = info.grad_norm if info.grad_norm is not None else self._grad_norm(ctx)
            self.grad_norm.append([self.step, finite_or_none(norm)])
        if (sampled or locate) and self._may_probe(ctx):
            try:
                self._probe(ctx, info, used_scale, "skipped-step" if locate else None, sampled)
            except RuntimeError as exc:  # e.g. no memory for the FP32 copy: the run goes on
                self.probe_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                self.reference = None
        self.overhead_s += time.perf_counter() - t0

    def result(self, ctx: RunContext) -> NumericsResult:
        """Built through NumericsResult (a field it lacks is refused)."""
        mean = self._mean_of
        return NumericsResult.model_validate({
            "every": self.options.every,
            "loss_scale": self.loss_scale,
            "skipped_steps": self.skipped,
            "grad_norm": self.grad_norm,
            "underflow": {
                "fraction": mean("fraction"),
                "fp32_reference_fraction": mean("fp32_reference_fraction"),
                "zero_fraction": mean("zero_fraction"),
                "fp32_reference_zero_fraction": mean("fp32_reference_zero_fraction"),
                "lost_fraction": mean("lost_fraction"),
                "threshold": FP16_TINY,
                "reference": self.reference_note,
                "samples": self.samples,
            },
            "overflow": {
                "limit": FP16_MAX,
                "act_amax": finite_or_none(self.act_max[0]),
                "act_amax_layer": self.act_max[1],
                "grad_amax": finite_or_none(self.grad_max[0]),
                "grad_amax_layer": self.grad_max[1],
                "grad_amax_unscaled": finite_or_none(self.grad_max[0] / self.grad_max[2]),
                "amax": self.amax,
                "events": self.events,
                "events_dropped": self.events_dropped,
            },
            "probes": self.probes,
            "probe_error": self.probe_error,
            "overhead_s": self.overhead_s,
            "overhead_fraction": self.overhead_s / self.train_s if self.train_s else None,
        })

    # -- work ----------------------------------------------------------------------------
    def _may_probe(self, ctx: RunContext) -> bool:
        if self.probe_error is not None:
            return False
        if ctx.recipe.family == "fp8" and not self.options.probe_fp8:
            self.reference_note = ("not probed: FP8 recipe (options.probe_fp8 turns it on; "
                                   "the probe's forward would feed FP8 scaling state)")
            return False
        return True

    def _mean_of(self, key: str) -> float | None:
        values = [s[key] for s in self.samples if s.get(key) is not None]
        return sum(values) / len(values) if values else None

    @staticmethod
    def _grad_norm(ctx: RunContext) -> float | None:
        grads = [p.grad.detach().float() for p in ctx.model.parameters() if p.grad is not None]
        if not grads:
            return None
        norms = torch.stack([torch.linalg.vector_norm(g) for g in grads])
        return float(torch.linalg.vector_norm(norms))

    def _probe(self, ctx: RunContext, info: StepInfo, scale: float, skip_kind: str | None,
               full: bool) -> None:
        """Probe the step's batch with the scale the step used; `full` adds the reference."""
        self.probes += 1
        run = probe(ctx.model, info.batch, ctx.recipe.autocast(ctx.device), scale,
                    self.options.max_elements)
        has_16bit = any(t.dtype in SIXTEEN_BIT for t in run.taps.values())
        ref = self._reference_pass(ctx, info) if self.options.reference and has_16bit else None
        self._watch(run, scale, skip_kind, ref)
        if not full:
            return
        if not has_16bit:
            self.reference_note = "no 16-bit activations: the run is its own fp32 reference"
        stats = underflow(run, ref)
        self.samples.append({"step": self.step, **stats.as_dict()})
        acts = [float(t.act_amax) for t in run.taps.values()]
        grads = [float(t.grad_amax) for t in run.taps.values() if t.grad_amax is not None]
        self.amax.append([self.step, finite_max(acts), finite_max(grads)])

    def _reference_pass(self, ctx: RunContext, info: StepInfo) -> ProbePass | None:
        if self.reference is None:
            self.reference, self.reference_note = _fp32_copy(ctx)
            self.reference.train()
        ref_params = dict(self.reference.named_parameters())
        with torch.no_grad():
            for name, p in ctx.model.named_parameters():
                ref_params[name].copy_(p.detach().float())
        with strict_fp32():
            return probe(self.reference, info.batch, contextlib.nullcontext(), 1.0,
                         self.options.max_elements)

    def _watch(self, run: ProbePass, scale: float, skip_kind: str | None,
               ref: ProbePass | None) -> None:
        """Track amax and record each (kind, layer) the first time it goes wrong.

        A non-finite event carries, where the FP32 reference has the layer, the magnitude
        the tensor would have had: `fp32_scaled_amax` (reference amax, x loss scale for
        gradients).
        """
        if not math.isfinite(run.loss):
            self._event("nonfinite-loss", None, run.loss)
        for tap in run.taps.values():
            a = float(tap.act_amax)
            if not math.isfinite(a):
                r = ref.taps.get(tap.name) if ref is not None else None
                self._event("nonfinite-activation", tap.name, a,
                            float(r.act_amax) if r is not None else None)
            elif a > FP16_MAX:
                self._event("above-fp16-max-activation", tap.name, a)
            if math.isfinite(a) and a > self.act_max[0]:
                self.act_max = (a, tap.name)
        backward = sorted((t for t in run.taps.values() if t.grad_amax is not None),
                          key=lambda t: t.grad_order or 0)
        for tap in backward:  # in the order gradients arrived: the first bad one is the origin
            g = float(tap.grad_amax)  # type: ignore[arg-type]
            if not math.isfinite(g):
                r = ref.taps.get(tap.name) if ref is not None else None
                would_be = float(r.grad_amax) * scale if r and r.grad_amax is not None else None
                self._event(skip_kind or "nonfinite-gradient", tap.name, g, would_be)
                skip_kind = None  # a skipped step is located at its first non-finite layer
            elif g > FP16_MAX:
                self._event("above-fp16-max-gradient", tap.name, g)
            if math.isfinite(g) and g > self.grad_max[0]:
                self.grad_max = (g, tap.name, scale)
        if skip_kind is not None:  # the re-probe did not reproduce the overflow
            self._event(skip_kind, None, None)

    def _event(self, kind: str, layer: str | None, value: float | None,
               would_be: float | None = None) -> None:
        key = (kind, layer or "")
        if key in self.seen and kind != "skipped-step":
            return
        self.seen.add(key)
        if len(self.events) >= self.options.max_events:
            self.events_dropped += 1
            return
        shown = value if value is None or math.isfinite(value) else str(value)
        event = {"step": self.step, "kind": kind, "layer": layer, "value": shown}
        if would_be is not None:
            event["fp32_scaled_amax"] = finite_or_none(would_be)
        self.events.append(event)
