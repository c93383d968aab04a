"""Per-layer GEMM timings for the advisor: each linear layer's three training GEMMs (forward,
input gradient, weight gradient) at the run's tokens per step, in the baseline recipe and
through the candidate recipe's own module or autocast, casts and scale work included.

A layer is timed standalone: a copy of its shape is built as nn.Linear, handed to the
recipe's `prepare` (FP8 recipes convert it to their module, autocast recipes keep it) and
called under the recipe's `autocast`, with an FP32 input (autocast's input cast is part of the
layer's cost, as in training). The input gradient is timed with the weights frozen, the weight
gradient with the input not requiring a gradient, each after its own untimed forward.
Layers of one GEMM shape (in, out features; the tokens are the run's) share one timing: every
block of a transformer repeats the same shapes. Baseline and recipe alternate repetition by
repetition, so a busy machine slows both alike, and each repetition is a paired sample of the
gain: the spread of those samples is the gain's uncertainty (`median_halfwidth`). Rounds go
over every shape in turn until the caller's decision rule has what it needs (`time_layers`).
The same code runs on a GPU (CUDA events around each timed part, one synchronisation per
repetition) and on a CPU (perf_counter).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from mpbench.precision.base import Recipe
from mpbench.precision.convert import linear_shape

PHASES = ("forward", "input_grad", "weight_grad")


@dataclass(frozen=True)
class LinearLayer:
    name: str
    """As model.named_modules() spells it."""
    in_features: int
    out_features: int
    bias: bool

    @property
    def shape(self) -> tuple[int, int]:
        """The GEMM shape layers share a timing by (the bias add is not a GEMM)."""
        return self.in_features, self.out_features


def linear_layers(model: nn.Module) -> list[LinearLayer]:
    """The model's linear layers (nn.Linear and Transformers' Conv1D), in model order."""
    out = []
    for name, module in model.named_modules():
        shape = linear_shape(module)
        if shape is not None:
            out.append(LinearLayer(name, shape[0], shape[1],
                                   getattr(module, "bias", None) is not None))
    return out


@dataclass(frozen=True)
class GemmTimes:
    """Milliseconds per call of each training GEMM of one layer (medians of repetitions)."""

    forward: float
    input_grad: float
    weight_grad: float

    @property
    def total(self) -> float:
        return self.forward + self.input_grad + self.weight_grad


Pair = tuple[GemmTimes, GemmTimes]
"""One repetition of a shape: (baseline, recipe), timed back to back."""


class LayerTimer(Protocol):
    """Times one layer shape in the baseline and in the recipe: one block of paired
    repetitions per call."""

    def time(self, layer: LinearLayer, tokens: int) -> list[Pair]: ...


MEDIAN_SE = 1.2533
"""Standard error of a median over that of a mean, for normal samples (sqrt(pi/2))."""
MAD_SIGMA = 1.4826
"""Median absolute deviation to standard deviation, for normal samples."""
Z95 = 1.96


def median_halfwidth(samples: Sequence[float]) -> float:
    """Half-width of a 95% interval of the median of `samples` (normal approximation with a
    robust scale: 1.96 * 1.2533 * 1.4826 * MAD / sqrt(n)); infinite under 3 samples. Steps or
    repetitions in one process are not independent runs: this is the spread of the advisor's
    own timings, the noise its decisions must clear, not a run-level interval."""
    n = len(samples)
    if n < 3:
        return math.inf
    mid = statistics.median(samples)
    mad = statistics.median(abs(x - mid) for x in samples)
    return Z95 * MEDIAN_SE * MAD_SIGMA * mad / math.sqrt(n)


@dataclass(frozen=True)
class LayerTiming:
    layer: LinearLayer
    baseline: GemmTimes
    recipe: GemmTimes
    gain_hw_ms: float = 0.0
    """Half-width of the gain's interval (median_halfwidth of the paired repetitions' gains),
    ms per step; every layer of the shape shares it."""

    @property
    def gain_ms(self) -> float:
        """Milliseconds per step the recipe saves on this layer (negative: it costs)."""
        return self.baseline.total - self.recipe.total


def _median(times: list[GemmTimes]) -> GemmTimes:
    return GemmTimes(*(statistics.median(getattr(t, p) for t in times) for p in PHASES))


def summarize_shape(layer: LinearLayer, pairs: list[Pair]) -> LayerTiming:
    """Medians of each GEMM over the repetitions, and the spread of the paired gains."""
    gains = [b.total - n.total for b, n in pairs]
    return LayerTiming(layer, _median([b for b, _ in pairs]), _median([n for _, n in pairs]),
                       median_halfwidth(gains))


def time_layers(layers: Sequence[LinearLayer], tokens: int, timer: LayerTimer,
                enough: Callable[[list[LayerTiming]], bool] | None = None, min_rounds: int = 2,
                max_rounds: int = 6, progress: Callable[[int, int], None] | None = None
                ) -> tuple[list[LayerTiming], int]:
    """Every layer's timings and the rounds they took. Each distinct shape is timed once per
    round; the rounds go over all shapes in turn (a burst of load on a shared machine hits
    every shape, not one) until `enough` says the timings are as precise as the decision needs
    (asked from `min_rounds` on; without it `min_rounds` rounds) or `max_rounds` are done."""
    shapes = list(dict.fromkeys(layer.shape for layer in layers))
    first = {shape: next(layer for layer in layers if layer.shape == shape) for shape in shapes}
    seen: dict[tuple[int, int], list[Pair]] = {s: [] for s in shapes}
    rounds = 0
    timings: list[LayerTiming] = []
    while rounds < max_rounds:
        for i, shape in enumerate(shapes):
            seen[shape] += timer.time(first[shape], tokens)
            if progress is not None:
                progress(rounds * len(shapes) + i + 1, max_rounds * len(shapes))
        rounds += 1
        by_shape = {shape: summarize_shape(first[shape], got) for shape, got in seen.items()}
        timings = [dataclasses.replace(by_shape[layer.shape], layer=layer) for layer in layers]
        if rounds >= min_rounds and (enough is None or enough(timings)):
            break
    return timings, rounds


class _Stopwatch:
    """Milliseconds of the timed part; on CUDA between two events, read after a sync."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.device = device

    def measure(self, fn: Callable[[], object]) -> float:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(self.device)
            return float(start.elapsed_time(end))
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1e3


class _Variant:
    """One recipe's version of a layer: its prepared module, input and upstream gradient."""

    def __init__(self, recipe: Recipe, layer: LinearLayer, tokens: int,
                 device: torch.device) -> None:
        self.recipe, self.device = recipe, device
        with recipe.activated():
            holder = recipe.prepare(nn.Sequential(nn.Linear(
                layer.in_features, layer.out_features, bias=layer.bias)), device)
        self.module: nn.Module = holder.get_submodule("0")
        self.params = [p for p in self.module.parameters() if p.is_floating_point()]
        dtype = next((p.dtype for p in self.params if p.dtype in (torch.float32, torch.bfloat16,
                                                                  torch.float16)), torch.float32)
        self.x = torch.randn(tokens, layer.in_features, device=device, dtype=dtype)
        with torch.no_grad(), recipe.autocast(device):
            out_dtype = self.module(self.x).dtype
        self.grad = torch.randn(tokens, layer.out_features, device=device, dtype=out_dtype)

    def _forward(self, x_grad: bool, w_grad: bool) -> torch.Tensor:
        self.x.requires_grad_(x_grad)
        for p in self.params:
            p.requires_grad_(w_grad)
        with self.recipe.autocast(self.device):
            out: torch.Tensor = self.module(self.x)
            return out

    def once(self, watch: _Stopwatch) -> tuple[float, float, float]:
        """One repetition of each GEMM: forward, input gradient, weight gradient (ms)."""
        with self.recipe.activated():
            fwd = watch.measure(lambda: self._forward(True, True))
            y = self._forward(True, False)
            dx = watch.measure(lambda: torch.autograd.grad(y, self.x, self.grad))
            y = self._forward(False, True)
            dw = watch.measure(lambda: torch.autograd.grad(y, self.params, self.grad))
        return fwd, dx, dw


class DeviceTimer:
    """Times layers on `device`: baseline and recipe alternate, `warmup` untimed repetitions
    the first time a shape is seen, then `reps` paired repetitions per call (a round of
    time_layers)."""

    def __init__(self, baseline: Recipe, recipe: Recipe, device: torch.device, warmup: int = 2,
                 reps: int = 3) -> None:
        self.baseline, self.recipe, self.device = baseline, recipe, device
        self.warmup, self.reps = warmup, reps
        self._built: dict[tuple[tuple[int, int], int], list[_Variant]] = {}

    def time(self, layer: LinearLayer, tokens: int) -> list[Pair]:
        key = (layer.shape, tokens)
        variants = self._built.get(key)
        watch = _Stopwatch(self.device)
        if variants is None:  # built and warmed once; later rounds reuse them
            variants = [_Variant(r, layer, tokens, self.device)
                        for r in (self.baseline, self.recipe)]
            self._built[key] = variants
            for _ in range(self.warmup):
                for v in variants:
                    v.once(watch)
        out: list[Pair] = []
        for _ in range(self.reps):
            base, new = (GemmTimes(*v.once(watch)) for v in variants)
            out.append((base, new))
        return out
