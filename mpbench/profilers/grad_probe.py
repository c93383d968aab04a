"""One probe pass: forward and backward on a batch with hooks on every leaf module's output.

The probe records, per layer, the activation amax and, through a tensor hook on the
output, the amax of the activation gradient and a fixed strided sample of its elements.
Activation gradients keep the dtype of the activation (fp16 under FP16 autocast), which
is where small values flush to zero; parameter .grad under autocast is fp32 and hides it.

The backward asks autograd for the gradient of the first hooked activation only, so no
parameter gradient is computed or touched: a probe never changes the training it watches.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

FP16_MAX = 65504.0
"""Largest finite float16."""
FP16_TINY = 2.0**-24
"""Smallest positive float16 (a subnormal): anything smaller in magnitude becomes 0."""
SIXTEEN_BIT = (torch.float16, torch.bfloat16)


@dataclass
class LayerTap:
    """What one module's output (and its gradient) showed in one probe pass."""

    name: str
    dtype: torch.dtype
    act_amax: torch.Tensor | float
    """A 0-d device tensor during the pass, a float after ProbePass.amax_values()."""
    grad_amax: torch.Tensor | float | None = None
    grad_sample: torch.Tensor | None = None
    grad_order: int | None = None
    """Position in which its gradient arrived during backward (0 = first, the loss end)."""


@dataclass
class ProbePass:
    loss: float
    taps: dict[str, LayerTap] = field(default_factory=dict)
    """By layer name, in forward order."""

    def amax_values(self) -> None:
        """Turn the 0-d device tensors into floats with one host sync."""
        scalars = [t.act_amax for t in self.taps.values()]
        scalars += [t.grad_amax for t in self.taps.values() if t.grad_amax is not None]
        if not scalars:
            return
        values = iter(torch.stack([torch.as_tensor(s).float() for s in scalars]).tolist())
        for tap in self.taps.values():
            tap.act_amax = next(values)
        for tap in self.taps.values():
            if tap.grad_amax is not None:
                tap.grad_amax = next(values)


def leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules() if name and not any(m.children())]


def _first_float(output: Any) -> torch.Tensor | None:
    if isinstance(output, torch.Tensor):
        return output if output.is_floating_point() else None
    if isinstance(output, (tuple, list)):
        for item in output:
            if isinstance(item, torch.Tensor) and item.is_floating_point():
                return item
    return None


def strided_sample(t: torch.Tensor, max_elements: int) -> torch.Tensor:
    """The same element positions for every tensor of the same shape, copied to fp32."""
    flat = t.detach().reshape(-1)
    stride = max(1, flat.numel() // max_elements)
    return flat[::stride][:max_elements].to(torch.float32, copy=True)


@contextlib.contextmanager
def no_checkpointing(model: nn.Module) -> Iterator[None]:
    """Recomputation would run the forward hooks twice; the probe runs without it."""
    before = getattr(model, "activation_checkpointing", None)
    if before:
        model.activation_checkpointing = False  # type: ignore[assignment]
    try:
        yield
    finally:
        if before:
            model.activation_checkpointing = before


def probe(
    model: nn.Module,
    batch: tuple[torch.Tensor, torch.Tensor],
    autocast: contextlib.AbstractContextManager[Any],
    loss_scale: float,
    max_elements: int,
) -> ProbePass:
    """Forward under `autocast`, backward of loss * loss_scale; returns per-layer taps."""
    result = ProbePass(loss=float("nan"))
    inputs: list[torch.Tensor] = []
    arrivals = [0]

    def grad_hook(tap: LayerTap) -> Any:
        def hook(grad: torch.Tensor) -> None:
            tap.grad_amax = grad.detach().abs().amax()
            tap.grad_sample = strided_sample(grad, max_elements)
            tap.grad_order = arrivals[0]
            arrivals[0] += 1

        return hook

    def forward_hook(name: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            out = _first_float(output)
            if out is None:
                return
            key = name if name not in result.taps else f"{name}#{len(result.taps)}"
            tap = LayerTap(key, out.dtype, out.detach().abs().amax())  # NaN/inf show in amax
            result.taps[key] = tap
            if out.requires_grad:
                out.register_hook(grad_hook(tap))
                if not inputs:
                    inputs.append(out)

        return hook

    handles = [m.register_forward_hook(forward_hook(n)) for n, m in leaf_modules(model)]
    x, y = batch
    try:
        with no_checkpointing(model), torch.enable_grad():
            with autocast:
                loss = model(x, y)
            if inputs:
                torch.autograd.grad(loss.float() * loss_scale, inputs, allow_unused=True)
    finally:
        for h in handles:
            h.remove()
    result.loss = float(loss.detach())
    result.amax_values()
    return result


@dataclass
class Underflow:
    """Underflow fractions over the sampled gradient elements of the 16-bit activations."""

    fraction: float | None
    """16-bit run: share that is zero or below FP16_TINY in magnitude (as it flows, scaled)."""
    fp32_reference_fraction: float | None
    """FP32 reference, unscaled: share that is zero or below FP16_TINY (what FP16 would lose)."""
    zero_fraction: float | None
    fp32_reference_zero_fraction: float | None
    lost_fraction: float | None
    """Non-zero in the FP32 reference, zero in the 16-bit run: flushed by underflow."""
    elements: int
    by_layer: dict[str, float]
    """lost_fraction per layer (or the reference's below-FP16_TINY share when no 16-bit run)."""

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _share(mask_count: int, total: int) -> float | None:
    return mask_count / total if total else None


def underflow(run: ProbePass, ref: ProbePass | None) -> Underflow:
    """Compare the run's 16-bit activation gradients with the reference's, element by element.

    For an all-FP32 run there are no 16-bit activations: `fraction` is None and the run is
    its own reference (its gradients over every layer show what FP16 would flush).
    """
    layers = [t for t in run.taps.values() if t.dtype in SIXTEEN_BIT and t.grad_sample is not None]
    if not layers:  # FP32 run: measure what FP16 would lose on its own gradients
        own = {t.name: t.grad_sample for t in run.taps.values() if t.grad_sample is not None}
        total = sum(int(g.numel()) for g in own.values())
        below = sum(int((g.abs() < FP16_TINY).sum()) for g in own.values())
        zero = sum(int((g == 0).sum()) for g in own.values())
        by = {name: float((g.abs() < FP16_TINY).float().mean()) for name, g in own.items()}
        return Underflow(None, _share(below, total), None, _share(zero, total), None, total, by)
    total = below = zero = ref_below = ref_zero = lost = ref_total = 0
    by_layer: dict[str, float] = {}
    for tap in layers:
        g = tap.grad_sample
        assert g is not None
        total += g.numel()
        below += int((g.abs() < FP16_TINY).sum())  # zero counts too: |0| < tiny
        zero += int((g == 0).sum())
        r = ref.taps.get(tap.name) if ref is not None else None
        if r is None or r.grad_sample is None or r.grad_sample.shape != g.shape:
            continue
        ref_total += g.numel()
        ref_below += int((r.grad_sample.abs() < FP16_TINY).sum())
        ref_zero += int((r.grad_sample == 0).sum())
        flushed = int(((g == 0) & (r.grad_sample != 0)).sum())
        lost += flushed
        by_layer[tap.name] = flushed / g.numel()
    return Underflow(
        _share(below, total), _share(ref_below, ref_total), _share(zero, total),
        _share(ref_zero, ref_total), _share(lost, ref_total), total, by_layer,
    )
