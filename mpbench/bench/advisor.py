"""Per-layer GEMM timings for the advisor: each linear layer's three training GEMMs (forward,
input gradient, weight gradient) at the run's tokens per step, in the baseline recipe and
through the candidate recipe's own module or autocast, casts and scale work included.

A layer is timed standalone: a copy of its shape is built as nn.Linear, handed to the
recipe's `prepare` (FP8 recipes convert it to their module, autocast recipes keep it) and
called under the recipe's `autocast`, with an FP32 input (autocast's input cast is part of the
layer's cost, as in training). The input gradient is timed with the weights frozen, the weight
gradient with the input not requiring a gradient, each after its own untimed forward.
Layers of one shape are timed once. Baseline and recipe alternate repetition by repetition,
so a busy machine slows both alike. The same code runs on a GPU (CUDA events around each timed
part, one synchronisation per repetition) and on a CPU (perf_counter).
"""

from __future__ import annotations

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
    def shape(self) -> tuple[int, int, bool]:
        return self.in_features, self.out_features, self.bias


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


class LayerTimer(Protocol):
    """Times one layer shape in the baseline and in the recipe: (baseline, recipe)."""

    def time(self, layer: LinearLayer, tokens: int) -> tuple[GemmTimes, GemmTimes]: ...


@dataclass(frozen=True)
class LayerTiming:
    layer: LinearLayer
    baseline: GemmTimes
    recipe: GemmTimes

    @property
    def gain_ms(self) -> float:
        """Milliseconds per step the recipe saves on this layer (negative: it costs)."""
        return self.baseline.total - self.recipe.total


def time_layers(layers: Sequence[LinearLayer], tokens: int, timer: LayerTimer, rounds: int = 3,
                progress: Callable[[int, int], None] | None = None) -> list[LayerTiming]:
    """Every layer's timings, each distinct shape timed once per round; the rounds go over all
    shapes in turn (a burst of load on a shared machine hits every shape, not one), and each
    GEMM's figure is the median over rounds."""
    shapes = list(dict.fromkeys(layer.shape for layer in layers))
    first = {shape: next(layer for layer in layers if layer.shape == shape) for shape in shapes}
    seen: dict[tuple[int, int, bool], list[tuple[GemmTimes, GemmTimes]]] = {s: [] for s in shapes}
    done = 0
    for _ in range(rounds):
        for shape in shapes:
            seen[shape].append(timer.time(first[shape], tokens))
            done += 1
            if progress is not None:
                progress(done, rounds * len(shapes))

    def median(times: list[GemmTimes]) -> GemmTimes:
        return GemmTimes(*(statistics.median(getattr(t, p) for t in times) for p in PHASES))

    by_shape = {shape: (median([b for b, _ in got]), median([n for _, n in got]))
                for shape, got in seen.items()}
    return [LayerTiming(layer, *by_shape[layer.shape]) for layer in layers]


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
    """Times layers on `device`: baseline and recipe alternate, `warmup` untimed repetitions,
    then repetitions until `min_time_s` is spent on the shape (at least `min_reps`, at most
    `max_reps`); the median of each GEMM's repetitions."""

    def __init__(self, baseline: Recipe, recipe: Recipe, device: torch.device, warmup: int = 2,
                 min_reps: int = 5, max_reps: int = 30, min_time_s: float = 0.08) -> None:
        self.baseline, self.recipe, self.device = baseline, recipe, device
        self.warmup, self.min_reps, self.max_reps = warmup, min_reps, max_reps
        self.min_time_s = min_time_s
        self._built: dict[tuple[tuple[int, int, bool], int], list[_Variant]] = {}

    def time(self, layer: LinearLayer, tokens: int) -> tuple[GemmTimes, GemmTimes]:
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
        samples: list[list[tuple[float, float, float]]] = [[], []]
        t0 = time.perf_counter()
        reps = 0
        while reps < self.max_reps and (reps < self.min_reps
                                        or time.perf_counter() - t0 < self.min_time_s):
            for side, v in enumerate(variants):
                samples[side].append(v.once(watch))
            reps += 1
        base, new = (GemmTimes(*(statistics.median(s[i] for s in side) for i in range(3)))
                     for side in samples)
        return base, new
