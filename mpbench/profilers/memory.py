"""Where the bytes go: parameters, gradients, optimizer state, saved activations, the rest.

After the measured window one extra step (weights restored afterwards) is run with
saved_tensors_hooks counting what autograd keeps for backward, and with the peak memory
read per phase (forward, backward, optimizer step) by the measurement max_batch also uses
(profilers/peaks.py: CUDA allocator peaks; on a CPU the state counted at step start
plus the rise of peak RSS, VmHWM, during the step).

Parameters, gradients and optimizer state are counted exactly from their tensors.
Activations and gradients are never all resident at once (gradients are set to None before
the forward; backward frees activations as it makes gradients), so the bytes resident at
the peak are modelled as state + max(activations + weight copies, gradients); the rest of
the measured peak is workspace, temporaries and allocator slack ("other").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from pydantic import Field
from torch import nn

from mpbench.profilers.base import (
    Profiler,
    ProfilerOptions,
    RunContext,
    register_profiler,
    weights_restored,
)
from mpbench.profilers.peaks import (
    StepMemory,
    live_state_bytes,
    optimizer_state_tensors,
    storages,
    unique_bytes,
)
from mpbench.results.payloads import MemoryResult

CUDA_TOLERANCE = 0.10
CPU_TOLERANCE = 0.25
"""RSS moves in pages and holds allocator slack and oneDNN scratch: a looser fit."""


class MemoryOptions(ProfilerOptions):
    tolerance: float | None = Field(
        None, gt=0, lt=1, description="allowed |other| / measured peak (default 0.10 CUDA, 0.25 CPU)")


def fp8_cache_bytes(recipe_info: dict[str, Any]) -> int:
    """FP8 weight caches a recipe reports in describe() (0 when it keeps none)."""
    for key in ("fp8_weight_cache_bytes", "weight_cache_bytes", "fp8_cache_bytes"):
        value = recipe_info.get(key)
        if isinstance(value, int | float):
            return int(value)
    return 0


_VIEW_FNS = ("TBackward0", "TransposeBackward0", "ViewBackward0", "PermuteBackward0",
             "ExpandBackward0", "UnsafeViewBackward0", "AliasBackward0", "SliceBackward0",
             "SplitBackward0", "AsStridedBackward0", "ReshapeAliasBackward0")


def model_state_keys(model: nn.Module) -> set[int]:
    keys: set[int] = set()
    for t in list(model.parameters()) + list(model.buffers()):
        keys.update(k for k, _ in storages(t))
    return keys


def _is_param_copy(t: torch.Tensor, params: set[int]) -> bool:
    fn: Any = t.grad_fn
    while fn is not None and type(fn).__name__ in _VIEW_FNS:
        fn = fn.next_functions[0][0] if fn.next_functions else None
    if fn is None or type(fn).__name__ != "ToCopyBackward0" or not fn.next_functions:
        return False
    source = fn.next_functions[0][0]
    variable = getattr(source, "variable", None)  # AccumulateGrad holds the leaf
    return variable is not None and id(variable) in params


class SavedTensorCounter:
    """Count storages saved for backward while `counting()` is active.

    Every tensor saved for backward passes through the pack hook. Storages are counted once
    (views such as q, k, v of one qkv output share a storage), parameters and buffers are left
    out (they are model state, not activations), and low-precision copies of parameters made
    by autocast (a ToCopy of a parameter, possibly seen through a view) are counted apart:
    they exist only because of the precision, so they are reported on their own line.
    """

    def __init__(self, model: nn.Module) -> None:
        self.excluded = model_state_keys(model)
        self.param_ids = {id(p) for p in model.parameters()}
        self.activation: dict[int, int] = {}
        self.weight_copies: dict[int, int] = {}
        self.enabled = True

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            into = self.weight_copies if _is_param_copy(t, self.param_ids) else self.activation
            for key, nbytes in storages(t):
                if key not in self.excluded and key not in self.activation:
                    into.setdefault(key, nbytes)
        return t

    @contextlib.contextmanager
    def counting(self) -> Iterator[SavedTensorCounter]:
        with torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t):
            yield self

    @property
    def activation_bytes(self) -> int:
        return sum(self.activation.values())

    @property
    def weight_copy_bytes(self) -> int:
        return sum(b for k, b in self.weight_copies.items() if k not in self.activation)


class PhasePeaks:
    """Peak memory per phase of one step: the model's forward hook ends 'forward', the
    optimizer's step pre-hook ends 'backward' (which includes unscale and clipping)."""

    def __init__(self, memory: StepMemory) -> None:
        self.memory = memory
        self.current = "forward"
        self.peaks: dict[str, int | None] = {}

    def boundary(self, next_phase: str) -> None:
        self.peaks[self.current] = self.memory.phase()
        self.current = next_phase


@register_profiler
class MemoryBreakdownProfiler(Profiler):
    summary = "bytes of parameters, gradients, optimizer state, saved activations and the rest"
    Options = MemoryOptions
    Result = MemoryResult

    def __init__(self, options: ProfilerOptions | None = None) -> None:
        super().__init__(options)
        self.found: dict[str, Any] = {}
        self.setup_bytes: int | None = None

    def on_start(self, ctx: RunContext) -> None:
        if ctx.device.type == "cuda":
            self.setup_bytes = torch.cuda.memory_allocated(ctx.device)
        else:
            self.setup_bytes = live_state_bytes(ctx.model, ctx.optimizer)

    def after_measure(self, ctx: RunContext) -> None:
        model, optimizer = ctx.model, ctx.optimizer
        counter = SavedTensorCounter(model)
        memory = StepMemory(ctx.device)
        phases = PhasePeaks(memory)

        def forward_done(_m: nn.Module, _i: Any, _o: Any) -> None:
            counter.enabled = False  # recomputation during backward is not held memory
            phases.boundary("backward")

        with weights_restored(model):
            x, y = ctx.next_batch()
            hooks = [model.register_forward_hook(forward_done),
                     optimizer.register_step_pre_hook(lambda *_: phases.boundary("optimizer"))]
            try:
                memory.start(live_state_bytes(model, optimizer))
                with counter.counting():
                    ctx.train_step(x, y)
                if ctx.device.type == "cuda":
                    torch.cuda.synchronize(ctx.device)
                phases.boundary("done")
            finally:
                for h in hooks:
                    h.remove()
        self.found = self._breakdown(ctx, counter, phases)

    def _breakdown(self, ctx: RunContext, counter: SavedTensorCounter,
                   phases: PhasePeaks) -> dict[str, Any]:
        model = ctx.model
        params = [p for p in model.parameters()]
        n_params = sum(p.numel() for p in params)
        parts = {
            "params_bytes": unique_bytes(params),
            "buffers_bytes": unique_bytes(list(model.buffers())),
            "grads_bytes": unique_bytes([p.grad for p in params if p.grad is not None]),
            "optimizer_bytes": unique_bytes(optimizer_state_tensors(ctx.optimizer)),
            "activations_bytes": counter.activation_bytes,
            "weight_copies_bytes": counter.weight_copy_bytes,
            "fp8_cache_bytes": fp8_cache_bytes(ctx.recipe.describe()),
        }
        state = (parts["params_bytes"] + parts["buffers_bytes"] + parts["optimizer_bytes"]
                 + parts["fp8_cache_bytes"])
        resident = state + max(parts["activations_bytes"] + parts["weight_copies_bytes"],
                               parts["grads_bytes"])
        measured = [v for v in phases.peaks.values() if v is not None]
        peak = max(measured) if measured else None
        cuda = ctx.device.type == "cuda"
        tol = self.options.tolerance if isinstance(self.options, MemoryOptions) else None
        tol = tol or (CUDA_TOLERANCE if cuda else CPU_TOLERANCE)
        out: dict[str, Any] = {
            **parts,
            "n_params": n_params,
            "model_state_bytes_per_param": ((parts["params_bytes"] + parts["grads_bytes"]
                                             + parts["optimizer_bytes"]) / n_params
                                            if n_params else None),
            "sum_bytes": sum(parts.values()),
            "resident_at_peak_bytes": resident,
            "measured_peak_bytes": peak,
            "measure": ("cuda max_memory_allocated" if cuda else
                        "model state at step start + peak RSS rise during the step"),
            "phase_peaks": {"setup": self.setup_bytes, **phases.peaks},
            "tolerance": tol,
        }
        if cuda:
            stats = torch.cuda.memory_stats(ctx.device)
            out.update(peak_reserved_bytes=phases.memory.reserved,
                       alloc_retries=int(stats.get("num_alloc_retries", 0)),
                       num_ooms=int(stats.get("num_ooms", 0)))
        if peak is None:
            out.update(other_bytes=None, matches=None, note="no peak memory reading on this system")
            return out
        other = peak - resident
        out["other_bytes"] = other
        out["matches"] = abs(other) <= tol * peak
        if not out["matches"]:
            out["note"] = (f"named parts resident at the peak are {resident / 2**20:.1f} MiB, the "
                           f"measured peak is {peak / 2**20:.1f} MiB: off by "
                           f"{other / 2**20:+.1f} MiB ({other / peak:+.0%}), outside ±{tol:.0%}")
        return out

    def result(self, ctx: RunContext) -> MemoryResult:
        """The breakdown, checked against MemoryResult (a field it lacks is refused)."""
        return MemoryResult.model_validate(self.found)
