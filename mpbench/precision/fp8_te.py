"""NVIDIA TransformerEngine: one recipe class (`TERecipe`) whose `scaling` option picks the TE
recipe class, and the named presets. TE is imported only when a TE recipe runs.

API facts (TE sources, tags v2.0 .. v2.18 and main): te.autocast(recipe=...) from 2.9,
te.fp8_autocast(fp8_recipe=...) before, picked by feature; te.Linear registers `weight` and `bias`
as nn.Linear does (values copied under the same names); without is_first_microbatch TE keeps no
persistent FP8 weight cache: each step quantizes the weight row-wise (forward GEMM) and
column-wise (dgrad) and holds both until backward. NVFP4BlockScaling asserts fp8_format E4M3
and turns on random Hadamard transforms, stochastic rounding and 2D weight quantization.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field
from torch import nn

from mpbench.config.schema import TrainConfig
from mpbench.precision import convert as converter
from mpbench.precision.base import cuda_capability_at_least
from mpbench.precision.fp8_base import Fp8Options, Fp8Recipe, Scaling, import_optional, preset

INSTALL = "pip install 'mpbench[te]'"
UPGRADE = "pip install -U 'mpbench[te]'"


@dataclass(frozen=True)
class TEScaling(Scaling):
    te_class: str = ""
    """The recipe class in transformer_engine.common.recipe, there since TE `since`."""
    since: str = "1.0"
    support: str = "fp8"
    """TE's support check: is_<support>_available (>= 2.9), fp8.check_<support>_support before."""
    capability: tuple[int, int] = (8, 9)
    eager_why: str | None = None
    """Why a run with train.compile stays eager, where TE cannot compile it."""


SCALINGS = {
    "delayed": TEScaling(
        "delayed per-tensor: scale from the amax history of earlier steps",
        ("fp8_format", "amax_history_len", "amax_compute_algo", "margin"),
        te_class="DelayedScaling", eager_why="TransformerEngine's DelayedScaling does not run "
        "under torch.compile, so this run is eager (fp8-te-current compiles)"),
    "current": TEScaling("current per-tensor: scale = fp8_max / amax of the tensor being cast",
                         ("fp8_format",), te_class="Float8CurrentScaling", since="2.2"),
    "block": TEScaling("block: one scale (power of 2 by TE default) per 1x128 tile of activations "
                       "and gradients, per 128x128 block of weights", te_class="Float8BlockScaling",
                       since="2.3", support="fp8_block_scaling", capability=(9, 0)),
    "mxfp8": TEScaling("MXFP8 block: one E8M0 (power-of-2) scale per 32 consecutive values",
                       te_class="MXFP8BlockScaling", since="2.0", support="mxfp8",
                       capability=(10, 0)),
    "nvfp4": TEScaling("NVFP4 2-level block: one E4M3 scale per 16 consecutive values, one FP32 "
                       "scale per tensor (TE defaults: random Hadamard transform, stochastic "
                       "rounding)", gemm_dtype="fp4", te_class="NVFP4BlockScaling", since="2.8",
                       support="nvfp4", capability=(10, 0)),
}


class TEOptions(Fp8Options):
    params_dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="te.Linear parameters (float32: FP32 master weights)")
    fp8_format: Literal["HYBRID", "E4M3"] = Field(
        "HYBRID", description="per-tensor scalings: HYBRID: E4M3 forward, E5M2 gradients; "
        "E4M3: E4M3 everywhere")
    amax_history_len: int = Field(1024, ge=1, description="delayed: amax history steps")
    amax_compute_algo: Literal["max", "most_recent"] = Field(
        "max", description="delayed: amax taken from the history: its maximum or the latest")
    margin: int = Field(0, ge=0, description="delayed: scale = fp8_max / amax / 2^margin")
    scaling: Literal["delayed", "current", "block", "mxfp8", "nvfp4"]  # SCALINGS
    scalings: ClassVar[Mapping[str, Scaling]] = SCALINGS


def import_te() -> tuple[ModuleType | None, str | None]:
    """(transformer_engine.pytorch, None), or (None, why it cannot be used)."""
    return import_optional("transformer_engine.pytorch", "TransformerEngine", INSTALL)


def version() -> str:
    return str(getattr(sys.modules.get("transformer_engine"), "__version__", "unknown"))


def recipe_class(spec: TEScaling) -> tuple[type | None, str | None]:
    try:
        recipes = importlib.import_module("transformer_engine.common.recipe")
    except Exception as exc:
        return None, f"transformer_engine.common.recipe failed to import ({exc}); {INSTALL}"
    cls = getattr(recipes, spec.te_class, None)
    if cls is None:
        return None, (f"TransformerEngine {version()} is too old for {spec.te_class} (needs >= "
                      f"{spec.since}); {UPGRADE}")
    return cls, None


def support_reason(te: ModuleType, kind: str) -> str | None:
    """TE's own verdict for this GPU (compute capability, CUDA and cuBLASLt versions)."""
    new_name, old_name = f"is_{kind}_available", f"check_{kind}_support"
    check: Callable[..., Any] | None = getattr(te, new_name, None)
    if check is not None:
        ok, reason = check(return_reason=True)
    else:
        try:
            legacy = importlib.import_module("transformer_engine.pytorch.fp8")
        except Exception:
            return None
        old: Callable[[], tuple[bool, str]] | None = getattr(legacy, old_name, None)
        if old is None:
            return f"TransformerEngine {version()} has no {old_name}; {UPGRADE}"
        ok, reason = old()
    return None if ok else f"TransformerEngine: {reason}"


def weight_copy_bytes(modules: list[nn.Module], kind: str) -> tuple[int, str]:
    """Bytes of the FP8 (FP4) weight copies TE holds per step, from the layer shapes."""
    elems = converter.weight_elements(modules)
    if kind == "nvfp4":  # row- and column-wise FP4 data (0.5 byte/value) + E4M3 scale per 16
        return elems + 2 * (elems // 16), (
            "estimate: row-wise and column-wise NVFP4 copies of each weight (0.5 byte/value "
            "each) plus 1-byte E4M3 scales per 16 values, held from forward to backward")
    if kind == "mxfp8":  # row- and column-wise data + one E8M0 scale per 32 values each
        return 2 * elems + 2 * (elems // 32), (
            "estimate: row-wise and column-wise MXFP8 copies of each weight (1 byte/value) "
            "plus 1-byte scales per 32 values, held from forward to backward each step")
    if kind == "fp8_block_scaling":  # 128x128 weight blocks, one fp32 scale each, for both copies
        return 2 * elems + 2 * 4 * (elems // (128 * 128) + len(modules)), (
            "estimate: row-wise and column-wise FP8 copies of each weight (1 byte/value) plus "
            "fp32 scales per 128x128 block, held from forward to backward each step")
    return 2 * elems, (
        "estimate: an FP8 copy of each weight for the forward GEMM and a transposed FP8 copy "
        "for dgrad (1 byte/value each), held from forward to backward each step; TE keeps no "
        "persistent cache unless is_first_microbatch is used")


_QUANTIZED_PARTS = ("_data", "_transpose", "_rowwise_data", "_columnwise_data", "_scale_inv",
                    "_rowwise_scale_inv", "_columnwise_scale_inv")


def persistent_cache_bytes(modules: list[nn.Module]) -> int:
    """Measured bytes of FP8 weight workspaces TE keeps between steps (_fp8_workspaces)."""
    return sum(tensor.numel() * tensor.element_size() for module in modules
               for cached in getattr(module, "_fp8_workspaces", {}).values()
               for part in _QUANTIZED_PARTS
               if isinstance(tensor := getattr(cached, part, None), torch.Tensor))


def delayed_scaling_telemetry(named: list[tuple[str, nn.Module]]) -> dict[str, Any]:
    """scale and amax (max over the history window) of input, weight and output gradient."""
    layers: dict[str, dict[str, float]] = {}
    for name, module in named:
        meta = getattr(module, "fp8_meta", None)
        try:
            fwd, bwd = meta["scaling_fwd"], meta["scaling_bwd"]  # type: ignore[index]
            fwd_amax, bwd_amax = fwd.amax_history.amax(dim=0), bwd.amax_history.amax(dim=0)
            layers[name] = {  # TE's slots: fwd 0 input, 1 weight; bwd 0 grad_output
                "input_scale": float(fwd.scale[0]), "input_amax": float(fwd_amax[0]),
                "weight_scale": float(fwd.scale[1]), "weight_amax": float(fwd_amax[1]),
                "grad_output_scale": float(bwd.scale[0]), "grad_output_amax": float(bwd_amax[0]),
            }
        except (TypeError, KeyError, AttributeError, IndexError):
            continue
    if not layers:
        return {"exposed": False, "note": "TE exposed no fp8_meta scaling state"}
    return {"exposed": True, "source": "te fp8_meta (delayed scaling state)", "layers": layers}


class TERecipe(Fp8Recipe):
    """te.Linear layers under BF16 autocast and TE's FP8 autocast with one TE recipe object."""

    backend = "te"
    Options: ClassVar[type[TEOptions]] = TEOptions
    options: TEOptions

    _te_recipe: Any = None
    """One TE recipe object for the whole run (TE keys its scaling state on it)."""

    @property
    def spec(self) -> TEScaling:
        return SCALINGS[self.options.scaling]

    def fp8_format(self) -> str:
        """TE Format name: HYBRID (E4M3 forward, E5M2 backward) or E4M3."""
        return self.options.fp8_format if "fp8_format" in self.spec.reads else "E4M3"

    def check(self, device: torch.device) -> str | None:
        what = f"{self.name} (TransformerEngine {self.spec.te_class})"
        if (reason := cuda_capability_at_least(device, *self.spec.capability, what)) is not None:
            return reason
        te, reason = import_te()
        if te is None:
            return reason
        return recipe_class(self.spec)[1] or support_reason(te, self.spec.support)

    def check_train(self, train: TrainConfig) -> str | None:
        if train.activation_checkpointing:
            # torch.utils.checkpoint would replay te.Linear's forward outside TE's FP8 autocast
            return (f"{self.name}: train.activation_checkpointing is not supported with "
                    "TransformerEngine here (it needs te.distributed.checkpoint); set it to false")
        return None

    def compile_refusal(self, train: TrainConfig) -> str | None:
        return f"{self.name}: {self.spec.eager_why}" if self.spec.eager_why else None

    def _te(self) -> Any:
        te, reason = import_te()
        if te is None:
            raise RuntimeError(reason)
        return te

    def te_recipe(self) -> Any:
        if self._te_recipe is None:
            cls, reason = recipe_class(self.spec)
            if cls is None:
                raise RuntimeError(reason)
            fmt = getattr(importlib.import_module("transformer_engine.common.recipe").Format,
                          self.fp8_format())
            delayed = {k: getattr(self.options, k) for k in self.spec.reads if k != "fp8_format"}
            self._te_recipe = cls(fp8_format=fmt, **delayed)
        return self._te_recipe

    def convert(self, model: nn.Module, names: list[str], device: torch.device) -> nn.Module:
        te = self._te()
        dtype = torch.float32 if self.options.params_dtype == "float32" else torch.bfloat16

        def make(linear: nn.Linear) -> nn.Module:  # te.Linear with the linear's values
            return converter.copy_parameters(te.Linear(
                linear.in_features, linear.out_features, bias=linear.bias is not None,
                params_dtype=dtype, device=device), linear)

        return converter.swap(model, names, make)

    def is_fp8_module(self, module: nn.Module) -> bool:
        te, _ = import_te()
        return te is not None and isinstance(module, te.Linear)

    @contextlib.contextmanager
    def autocast(self, device: torch.device) -> Iterator[None]:
        te, recipe = self._te(), self.te_recipe()  # TE's FP8 context, found by feature:
        fp8 = te.autocast(enabled=True, recipe=recipe) if hasattr(te, "autocast") else \
            te.fp8_autocast(enabled=True, fp8_recipe=recipe)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16), fp8:
            yield

    def formats(self) -> dict[str, str]:
        if self.spec.support == "nvfp4":
            return {"forward": "e2m1", "backward": "e2m1",
                    "scales": "e4m3 per 16 + fp32 per tensor"}
        if (fmt := self.fp8_format()) == "HYBRID":
            return {"forward": "e4m3", "backward": "e5m2"}
        return {"forward": fmt.lower(), "backward": fmt.lower()}

    def weight_cache(self, fp8_modules: list[nn.Module]) -> tuple[int | None, str]:
        return weight_copy_bytes(fp8_modules, self.spec.support)

    def telemetry(self, named: list[tuple[str, nn.Module]]) -> dict[str, Any]:
        cache = persistent_cache_bytes([module for _, module in named])
        if self.options.scaling == "delayed":
            return {**delayed_scaling_telemetry(named), "persistent_fp8_weight_cache_bytes": cache}
        return {"exposed": False, "note": f"{self.spec.te_class} computes scales from each tensor "
                "on the fly and keeps none between steps",
                "persistent_fp8_weight_cache_bytes": cache}

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        out["fp8"]["te_version"] = version() if import_te()[0] else None
        out["fp8"]["te_recipe"] = repr(self._te_recipe) if self._te_recipe is not None else None
        out["fp8"]["params_dtype"] = self.options.params_dtype
        return out


preset(TERecipe, "fp8-te-delayed", "delayed", "TransformerEngine FP8, DelayedScaling (HYBRID: "
       "E4M3 forward, E5M2 backward; per-tensor scales from an amax history), BF16 autocast "
       "elsewhere")
preset(TERecipe, "fp8-te-current", "current", "TransformerEngine FP8, Float8CurrentScaling "
       "(per-tensor scale from the current amax; needs TE >= 2.2), BF16 autocast elsewhere")
preset(TERecipe, "fp8-te-block", "block", "TransformerEngine FP8, Float8BlockScaling (E4M3, "
       "power-of-2 scales per 1x128 activation tile and 128x128 weight block; Hopper+, TE >= 2.3, "
       "CUDA >= 12.9)")
preset(TERecipe, "fp8-te-mxfp8", "mxfp8", "TransformerEngine MXFP8BlockScaling (E4M3 values, one "
       "E8M0 power-of-2 scale per 32 values; Blackwell SM100+ only, not H100/H200)")
preset(TERecipe, "fp4-te-nvfp4", "nvfp4", "TransformerEngine NVFP4BlockScaling (E2M1 values, an "
       "E4M3 scale per 16 and an FP32 scale per tensor; needs Blackwell SM100+ and "
       "TransformerEngine >= 2.8)")
