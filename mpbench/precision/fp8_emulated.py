"""fp8-emulated: FP8 numerics on any device (CPU included); numerics only, never a speed claim.

`implementation: native` (default) runs mpbench's quantize-dequantize linear
(EmulatedFp8Linear, below); `implementation: torchao` runs torchao's Float8Linear with
emulate=True (tensorwise). Both keep weights, LM head and embeddings exactly as the BF16
recipe has them.

The native linear emulates a Linear's GEMMs the way TransformerEngine's HYBRID format runs
them: input and weight in E4M3 for the forward, the output gradient in E5M2 for both backward
GEMMs (dgrad = dY·W, wgrad = dYᵀ·X), each tensor scaled by fp8_max / amax of that tensor
(current scaling), products accumulated in FP32 and the output returned in the autocast
dtype. This reproduces FP8 rounding and range, not FP8 speed: it runs on any device.
`scaling: delayed` (native only) scales each operand as TransformerEngine's DelayedScaling
does instead, from an amax history of `amax_history_len` steps (`DelayedScaling`, below).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from mpbench.precision import convert, fp8_ao
from mpbench.precision.base import register
from mpbench.precision.fp8_base import Fp8Options, Fp8Recipe, Scaling

E4M3 = torch.float8_e4m3fn
E5M2 = torch.float8_e5m2
AMAX_FLOOR = 1e-12
"""An all-zero tensor gets this amax so that its scale stays finite (a history whose largest
amax is this small scales as if it were this)."""


def fp8_max(dtype: torch.dtype) -> float:
    return float(torch.finfo(dtype).max)  # 448 for e4m3fn, 57344 for e5m2


def quantize(x: torch.Tensor, dtype: torch.dtype,
             scale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(x * scale) cast to `dtype`, and the fp32 scale; by default scale = fp8_max / amax(x)."""
    x32 = x.float()
    if scale is None:
        scale = fp8_max(dtype) / x32.abs().amax().clamp(min=AMAX_FLOOR)
    # Clamp before the cast: torch < 2.12 turns out-of-range values into NaN instead of
    # saturating, and rounding of x*scale can step just past fp8_max.
    limit = fp8_max(dtype)
    return (x32 * scale).clamp(-limit, limit).to(dtype), scale


def quantize_dequantize(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The value x takes after a round trip through `dtype` with per-tensor scaling (fp32)."""
    q, scale = quantize(x, dtype)
    return q.float() / scale


class DelayedScaling:
    """TransformerEngine's DelayedScaling rule, per operand of one layer (input, weight,
    grad_output): scale = fp8_max / the largest amax of its last `history_len` steps
    (amax_compute_algo "max", margin 0), 1 before any step was seen, as TE starts; the tensor's
    own amax joins the history after the cast, so a value beyond the range the history
    predicts saturates."""

    def __init__(self, history_len: int) -> None:
        self.history_len = history_len
        self.history: dict[str, torch.Tensor] = {}
        """Per operand, the amax of the last steps, newest first."""

    def scale(self, operand: str, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """The scale for this step's cast of `x` (from earlier steps); records x's amax."""
        amax = x.detach().float().abs().amax().reshape(1)
        past = self.history.get(operand)
        if past is None:
            past = torch.zeros(self.history_len, device=x.device)
        seen = past.max()
        scale = torch.where(seen > 0, torch.finfo(dtype).max / seen.clamp(min=AMAX_FLOOR),
                            torch.ones_like(seen))
        self.history[operand] = torch.cat([amax, past[:-1]])
        return scale


def _scale(delayed: DelayedScaling | None, operand: str, x: torch.Tensor,
           dtype: torch.dtype) -> torch.Tensor | None:
    return None if delayed is None else delayed.scale(operand, x, dtype)


class _Fp8LinearFunction(torch.autograd.Function):
    """y = x·Wᵀ + b with FP8-rounded operands; saves the FP8 copies for backward as TE does."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
        out_dtype: torch.dtype, stats: dict[str, torch.Tensor],
        delayed: DelayedScaling | None = None,
    ) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            x2d = x.reshape(-1, x.shape[-1])  # (M, K)
            xq, x_scale = quantize(x2d, E4M3, _scale(delayed, "input", x2d, E4M3))
            wq, w_scale = quantize(weight, E4M3, _scale(delayed, "weight", weight, E4M3))  # (N, K)
            y = (xq.float() @ wq.float().t()) / (x_scale * w_scale)  # (M, N), fp32 accumulate
            if bias is not None:
                y = y + bias.float()
        stats["input_amax"] = fp8_max(E4M3) / x_scale.detach()
        stats["weight_amax"] = fp8_max(E4M3) / w_scale.detach()
        ctx.save_for_backward(xq, x_scale, wq, w_scale)
        ctx.meta = (x.shape, x.dtype, weight.dtype, bias is not None, stats, delayed)
        return y.reshape(*x.shape[:-1], weight.shape[0]).to(out_dtype)

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[Any, ...]:
        xq, x_scale, wq, w_scale = ctx.saved_tensors
        x_shape, x_dtype, w_dtype, has_bias, stats, delayed = ctx.meta
        with torch.autocast(device_type=grad_out.device.type, enabled=False):
            g2d = grad_out.reshape(-1, grad_out.shape[-1])  # (M, N)
            gq, g_scale = quantize(g2d, E5M2, _scale(delayed, "grad_output", g2d, E5M2))
            g = gq.float()
            grad_x = (g @ wq.float()) / (g_scale * w_scale)  # dgrad (M, K): E5M2 x E4M3
            grad_w = (g.t() @ xq.float()) / (g_scale * x_scale)  # wgrad (N, K): E5M2 x E4M3
            # TE and torchao take the bias gradient from the unquantized output gradient.
            grad_b = g2d.float().sum(0) if has_bias else None
        stats["grad_output_amax"] = fp8_max(E5M2) / g_scale.detach()
        return (grad_x.reshape(x_shape).to(x_dtype), grad_w.to(w_dtype),
                grad_b.to(w_dtype) if grad_b is not None else None, None, None, None)


class EmulatedFp8Linear(nn.Linear):
    """nn.Linear whose GEMMs run through FP8 quantize-dequantize (names weight/bias kept)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None,
                 delayed: DelayedScaling | None = None) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.fp8_stats: dict[str, torch.Tensor] = {}
        """Per operand (input, weight, grad_output) the amax behind the last scale used."""
        self.delayed = delayed
        """None: current scaling (each cast scaled by its own amax)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_autocast_enabled(x.device.type):
            out_dtype = torch.get_autocast_dtype(x.device.type)
        else:
            out_dtype = x.dtype
        return _Fp8LinearFunction.apply(x, self.weight, self.bias, out_dtype, self.fp8_stats,
                                        self.delayed)

    def telemetry(self) -> dict[str, float]:
        """amax and the resulting scale per operand, as the last step saw them."""
        out: dict[str, float] = {}
        for key, amax in self.fp8_stats.items():
            value = float(amax)
            fmt = E5M2 if key.startswith("grad") else E4M3
            out[key] = value
            out[key.replace("amax", "scale")] = fp8_max(fmt) / value
        return out


def relative_error(x: torch.Tensor, dtype: torch.dtype) -> float:
    """‖qdq(x) − x‖ / ‖x‖ for one round trip (used by tests and sanity checks)."""
    ref = x.float()
    err = (quantize_dequantize(x, dtype) - ref).norm() / ref.norm().clamp(min=AMAX_FLOOR)
    return float(err)


def e4m3_unit_roundoff() -> float:
    """2^-(mantissa bits + 1): the worst relative rounding error of a normal e4m3 value."""
    return math.ldexp(1.0, -(3 + 1))


SCALINGS = {
    "current": Scaling("current per-tensor: scale = fp8_max / amax of the tensor being cast"),
    "delayed": Scaling("delayed per-tensor: scale = fp8_max / max amax of the last {n} steps "
                       "(1 before any)", ("amax_history_len",)),
}


class EmulatedOptions(Fp8Options):
    implementation: Literal["native", "torchao"] = Field(
        "native", description="native: mpbench's quantize-dequantize linear; torchao: "
        "Float8Linear(emulate=True), tensorwise")
    scaling: Literal["current", "delayed"] = Field(
        "current", description="native: current (scale from the tensor's own amax) or delayed "
        "(TransformerEngine DelayedScaling: from the amax history of earlier steps)")
    amax_history_len: int = Field(16, ge=1, le=1024, description="delayed scaling: steps of "
                                  "amax history the scale is taken from (their maximum)")
    scalings: ClassVar[Mapping[str, Scaling]] = SCALINGS


def emulated_linear(linear: nn.Linear, history_len: int | None = None) -> nn.Module:
    """The emulated FP8 twin of `linear`, holding the very same parameters; `history_len`
    turns on delayed scaling with that amax history."""
    delayed = DelayedScaling(history_len) if history_len is not None else None
    twin = EmulatedFp8Linear(linear.in_features, linear.out_features,
                             bias=linear.bias is not None, device="meta", delayed=delayed)
    return convert.share_parameters(twin, linear)


@register
class Fp8Emulated(Fp8Recipe):
    name = "fp8-emulated"
    summary = ("FP8 numerics emulated with torch float8 dtypes (E4M3 forward, E5M2 gradients, "
               "per-tensor current scaling, FP32 accumulation); numerics only, runs on a CPU")
    numerics_only = True
    backend = "emulated"
    Options: ClassVar[type[EmulatedOptions]] = EmulatedOptions
    options: EmulatedOptions

    @property
    def native(self) -> bool:
        return self.options.implementation == "native"

    @property
    def delayed(self) -> bool:
        return self.native and self.options.scaling == "delayed"

    def check(self, device: torch.device) -> str | None:
        if self.options.scaling == "delayed" and not self.native:
            return "fp8-emulated: scaling 'delayed' needs implementation 'native'"
        return None if self.native else fp8_ao.unavailable("tensorwise")

    def amax_history_len(self) -> int | None:
        return self.options.amax_history_len if self.delayed else None

    def convert(self, model: nn.Module, names: list[str], device: torch.device) -> nn.Module:
        if self.native:
            history = self.amax_history_len()
            return convert.swap(model, names, lambda lin: emulated_linear(lin, history))
        return fp8_ao.convert_named(model, fp8_ao.make_config("tensorwise", emulate=True), names)

    def is_fp8_module(self, module: nn.Module) -> bool:
        if isinstance(module, EmulatedFp8Linear):
            return True
        cls = None if self.native else fp8_ao.float8_linear_type()
        return cls is not None and isinstance(module, cls)

    def weight_cache(self, fp8_modules: list[nn.Module]) -> tuple[int | None, str]:
        if not self.native:
            return 0, "torchao emulation: casts in backward again, keeps no FP8 weight copy"
        return convert.weight_elements(fp8_modules), (
            "the E4M3 weight copy (1 byte/value) the emulation saves from forward to backward, "
            "as TE does; the emulation's own fp32 temporaries not counted")

    def telemetry(self, named: list[tuple[str, nn.Module]]) -> dict[str, Any]:
        layers = {name: module.telemetry() for name, module in named
                  if isinstance(module, EmulatedFp8Linear) and module.fp8_stats}
        if not layers:
            return {"exposed": False}
        return {"exposed": True, "source": "emulation, last step (amax per operand, "
                "scale = fp8_max / amax)", "layers": layers}

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["fp8"]["implementation"] = self.options.implementation
        spec = self.spec if self.delayed else SCALINGS["current"]  # torchao's: current only
        out["fp8"]["scaling"] = spec.words.format(n=self.options.amax_history_len)
        out["fp8"]["note"] = ("emulated: FP8 rounding and range without FP8 tensor cores; its "
                              "speed and memory say nothing about real FP8")
        return out
