"""What every FP8 recipe shares: the divisible-by-16 GEMM rules, the BF16 surroundings,
the conversion of a built model (convert.py), the inventory of which layers run in FP8,
and the `fp8` block of the record.

FP8 replaces the GEMMs of the linear layers the filter allows (by default every linear
with FP8-legal shapes but the LM head), on every model: reference, Hugging Face or user.
Embeddings, norms, attention (softmax, score and value matmuls) and the LM head run under
BF16 autocast. A backend only says how one nn.Linear becomes its FP8 module (`convert`).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import nn

from mpbench.config.model_sizes import ModelConfig
from mpbench.precision import convert as converter
from mpbench.precision.base import Recipe, RecipeOptions
from mpbench.precision.convert import ALIGN, Fp8Filter

# ALIGN: FP8 GEMMs (cuBLASLt, TE, torchao) need every matrix dimension divisible by 16.

LM_HEAD = "lm_head"


@dataclass(frozen=True)
class GemmDim:
    label: str
    """How the suite spells it: n_embd, ffn_dim, 2*n_kv_head*head_dim, ..."""
    value: int
    fix: str
    """What to change in the suite to fix it."""


@dataclass(frozen=True)
class GemmLayer:
    suffix: str
    """Module path inside a block, e.g. attn.qkv (full name blocks.<i>.<suffix>)."""
    in_dim: GemmDim
    out_dim: GemmDim


def nearest_multiple(value: int, align: int = ALIGN) -> int:
    """The multiple of `align` closest to value (ties go up; never below align)."""
    down = (value // align) * align
    up = down + align
    return max(align, up if value - down >= up - value else down)


def block_linears(cfg: ModelConfig) -> list[GemmLayer]:
    """The linear layers of one transformer block and the suite dimensions behind them."""
    d = GemmDim("n_embd", cfg.n_embd, "change the model's n_embd (keep it divisible by n_head)")
    ffn = GemmDim("ffn_dim", cfg.ffn_dim, "set the model's ffn_hidden")
    if cfg.arch == "gpt":
        qkv = GemmDim("3*n_embd", 3 * cfg.n_embd, "change the model's n_embd")
        return [GemmLayer("attn.qkv", d, qkv), GemmLayer("attn.proj", d, d),
                GemmLayer("mlp.fc", d, ffn), GemmLayer("mlp.proj", ffn, d)]
    heads = "change n_head, n_kv_head or n_embd"
    q = GemmDim("n_head*head_dim", cfg.n_head * cfg.head_dim, heads)
    kv = GemmDim("2*n_kv_head*head_dim", 2 * cfg.kv_heads * cfg.head_dim, heads)
    gate_up = GemmDim("2*ffn_dim", 2 * cfg.ffn_dim, "set the model's ffn_hidden")
    return [GemmLayer("attn.q", d, q), GemmLayer("attn.kv", d, kv), GemmLayer("attn.proj", q, d),
            GemmLayer("mlp.gate_up", d, gate_up), GemmLayer("mlp.proj", ffn, d)]


def fp8_shape_ok(in_features: int, out_features: int) -> bool:
    return in_features % ALIGN == 0 and out_features % ALIGN == 0


def token_problem(batch_size: int, seq_len: int) -> str | None:
    tokens = batch_size * seq_len
    if tokens % ALIGN == 0:
        return None
    seq_fix = nearest_multiple(seq_len, ALIGN // math.gcd(batch_size, ALIGN))
    return (
        f"FP8 GEMM dimension batch_size*seq_len = {batch_size}*{seq_len} = {tokens} is not "
        f"divisible by {ALIGN} (nearest valid value: {nearest_multiple(tokens)}, e.g. seq_len "
        f"{seq_fix}); change train.batch_size or train.seq_len (allow_bf16_fallback cannot help: "
        f"every FP8 GEMM has this dimension)"
    )


def shape_problem(cfg: ModelConfig | None, batch_size: int, seq_len: int,
                  fallback: bool) -> str | None:
    """The first FP8 dimension rule the suite breaks, or None.

    Layer shapes are checked for the reference models (`cfg`); the layers of Hugging Face
    and user models that break the rule are kept in BF16 by the filter and listed."""
    if not fallback and cfg is not None:
        for layer in block_linears(cfg):
            for dim in (layer.in_dim, layer.out_dim):
                if dim.value % ALIGN == 0:
                    continue
                return (
                    f"FP8 GEMM dimension {dim.label} = {dim.value} (layer {layer.suffix}) is not "
                    f"divisible by {ALIGN} (nearest valid value: {nearest_multiple(dim.value)}); "
                    f"{dim.fix}, or set the precision option allow_bf16_fallback: true to keep "
                    f"such layers in BF16"
                )
    return token_problem(batch_size, seq_len)


class Fp8Options(RecipeOptions):
    allow_bf16_fallback: bool = Field(
        False, description="keep linear layers whose dims are not divisible by 16 in BF16 "
        "(listed in the record) instead of refusing the suite")
    fp8_filter: Fp8Filter = Field(
        default_factory=Fp8Filter, description="which linear layers become FP8: include / "
        "exclude name globs and the divisible_by shape rule")


def linear_dims(module: nn.Module) -> tuple[int, int]:
    """(in_features, out_features) of a linear-like module; (0, 0) for anything else."""
    in_f, out_f = getattr(module, "in_features", 0), getattr(module, "out_features", 0)
    return (in_f, out_f) if isinstance(in_f, int) and isinstance(out_f, int) else (0, 0)


def is_linear(module: nn.Module) -> bool:
    """nn.Linear and the FP8 linears (te.Linear, Float8Linear) all carry these two fields."""
    return isinstance(getattr(module, "in_features", None), int) and isinstance(
        getattr(module, "out_features", None), int)


class Fp8Recipe(Recipe):
    """Base for the FP8 recipes: BF16 autocast around FP8 linear layers."""

    family = "fp8"
    compute_dtype = torch.float8_e4m3fn
    Options: ClassVar[type[RecipeOptions]] = Fp8Options
    options: Fp8Options
    backend: ClassVar[str]
    """te, torchao or emulated."""
    scaling: ClassVar[str]
    """How scales are chosen, in words, for the record."""

    def __init__(self, options: RecipeOptions | None = None) -> None:
        super().__init__(options)
        # Strong references: describe() runs after training, when the model itself is gone,
        # and reads the scaling state these modules hold. Freed with the recipe.
        self._fp8_layers: list[tuple[str, nn.Module]] | None = None
        self._kept: dict[str, str] = {}
        self._fp8_weight_fraction: float | None = None
        self._cache: tuple[int | None, str] = (
            None, "model not built (run skipped or failed before prepare)")

    # -- hooks for the backends --------------------------------------------------
    def is_fp8_module(self, module: nn.Module) -> bool:
        raise NotImplementedError

    def convert(self, model: nn.Module, names: list[str], device: torch.device) -> nn.Module:
        """Swap the named linear layers (nn.Linear or Conv1D, on `device`) for FP8 modules.

        convert.swap(model, names, make) does it for a backend that makes one module from
        one nn.Linear; torchao converts through its own convert_to_float8_training."""
        raise NotImplementedError

    def formats(self) -> dict[str, str]:
        return {"forward": "e4m3", "backward": "e5m2"}

    def amax_history_len(self) -> int | None:
        return None

    def weight_cache(self, fp8_modules: list[nn.Module]) -> tuple[int | None, str]:
        """Extra bytes FP8 copies of the weights cost, and how the number was obtained."""
        return None, "unknown for this backend"

    def telemetry(self, named: list[tuple[str, nn.Module]]) -> dict[str, Any]:
        return {"exposed": False}

    # -- the Recipe interface ----------------------------------------------------
    def check_shapes(self, model: ModelConfig | None, batch_size: int, seq_len: int) -> str | None:
        return shape_problem(model, batch_size, seq_len, self.options.allow_bf16_fallback)

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)

    def prepare(self, model: nn.Module, device: torch.device) -> nn.Module:
        """Move the built model, then convert the layers the filter allows (every model)."""
        model = model.to(device)
        chosen = converter.plan(model, self.options.fp8_filter)
        model = self.convert(model, chosen.convert, device)
        self._take_inventory(model, chosen.kept)
        return model

    def _take_inventory(self, model: nn.Module, kept: dict[str, str]) -> None:
        fp8: list[tuple[str, nn.Module]] = []
        self._kept = {}
        total = in_fp8 = 0
        for name, module in model.named_modules():
            shape = converter.linear_shape(module) or (
                linear_dims(module) if is_linear(module) else None)
            if shape is None:
                continue
            size = shape[0] * shape[1]
            total += size
            if self.is_fp8_module(module):
                fp8.append((name, module))
                in_fp8 += size
            else:
                self._kept[name] = kept.get(name, "not converted by this backend")
        self._fp8_layers = fp8
        self._fp8_weight_fraction = in_fp8 / total if total else None
        self._cache = self.weight_cache([module for _, module in fp8])

    def describe(self) -> dict[str, Any]:
        named = self._fp8_layers
        cache_bytes, cache_note = self._cache
        return {
            **super().describe(),
            "non_fp8_ops": "BF16 autocast (embeddings, norms, attention, LM head, loss in FP32)",
            "fp8": {
                "backend": self.backend,
                "formats": self.formats(),
                "scaling": self.scaling,
                "amax_history_len": self.amax_history_len(),
                "layers_in_fp8": None if named is None else [name for name, _ in named],
                "layers_kept_bf16": None if named is None else list(self._kept),
                "kept_bf16_reasons": dict(self._kept),
                "fp8_weight_fraction": self._fp8_weight_fraction,
                "weight_cache_bytes": cache_bytes,
                "weight_cache_note": cache_note,
                "telemetry": self.telemetry(named) if named else {"exposed": False},
            },
        }
