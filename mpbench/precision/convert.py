"""FP8 as a model converter: after any model is built, swap the linear layers a filter allows
for FP8 linears (te.Linear, torchao Float8Linear, mpbench's emulated linear), weights kept.

As torchtitan converts models, the filter decides by module name (globs) and by shape: a
layer with a dimension not divisible by 16, and the LM head, stay in BF16 by default
(`fp8_filter` in a recipe's options changes that). A layer whose weight is shared with
another module (tied embeddings) also stays, so the tie holds. Transformers' GPT-2 uses
Conv1D (the transposed weight of a linear): a selected Conv1D is first replaced by the
equivalent nn.Linear.

The same divisible-by-16 rule is checked at load against a reference model's dimensions and
the token count (`shape_problem`), so a suite that cannot run in FP8 is refused with the fix.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from pydantic import Field
from torch import nn

from mpbench.config import Strict
from mpbench.config.model_sizes import ModelConfig

ALIGN = 16
"""FP8 GEMMs (cuBLASLt, TE, torchao) need every matrix dimension divisible by 16."""


class Fp8Filter(Strict):
    """Which linear layers become FP8 (module names as model.named_modules() spells them)."""

    include: list[str] = Field(default_factory=lambda: ["*"],
                               description="globs of module names that may become FP8")
    exclude: list[str] = Field(default_factory=lambda: ["lm_head", "*.lm_head"],
                               description="globs of module names that stay BF16 (LM head)")
    divisible_by: int = Field(ALIGN, ge=ALIGN, multiple_of=ALIGN,
                              description="both dimensions must be multiples of this")


@dataclass
class Plan:
    convert: list[str] = field(default_factory=list)
    """Module names to swap, in model order."""
    kept: dict[str, str] = field(default_factory=dict)
    """Linear layers left alone, with the reason."""


def is_conv1d(module: nn.Module) -> bool:
    """transformers.pytorch_utils.Conv1D: y = x @ W + b with W (in, out)."""
    weight = getattr(module, "weight", None)
    return (type(module).__name__ == "Conv1D" and isinstance(getattr(module, "nf", None), int)
            and isinstance(weight, torch.Tensor) and weight.ndim == 2)


def linear_shape(module: nn.Module) -> tuple[int, int] | None:
    """(in_features, out_features) of a plain linear layer the converter may swap, else None."""
    if type(module) is nn.Linear:
        return module.in_features, module.out_features
    if is_conv1d(module):
        weight: torch.Tensor = module.weight  # type: ignore[assignment]
        return int(weight.shape[0]), int(weight.shape[1])
    return None


def _tied(model: nn.Module) -> dict[int, list[str]]:
    owners: dict[int, list[str]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        weight = module._parameters.get("weight")
        if weight is not None:
            owners.setdefault(id(weight), []).append(name)
    return owners


def plan(model: nn.Module, filt: Fp8Filter) -> Plan:
    out = Plan()
    owners = _tied(model)
    for name, module in model.named_modules():
        shape = linear_shape(module)
        if shape is None:
            continue
        in_f, out_f = shape
        if not any(fnmatch.fnmatchcase(name, g) for g in filt.include):
            out.kept[name] = f"not matched by fp8_filter.include {filt.include}"
        elif any(fnmatch.fnmatchcase(name, g) for g in filt.exclude):
            lm = name == "lm_head" or name.endswith(".lm_head")
            out.kept[name] = ("LM head: kept in BF16 by design (fp8_filter.exclude)" if lm
                              else f"matched by fp8_filter.exclude {filt.exclude}")
        elif in_f % filt.divisible_by or out_f % filt.divisible_by:
            out.kept[name] = (f"{in_f}x{out_f}: a dimension is not divisible by "
                              f"{filt.divisible_by} (allow_bf16_fallback)")
        elif len(others := [n for n in owners.get(id(module.weight), []) if n != name]):
            out.kept[name] = f"weight tied to {others[0]}: kept so the tie holds"
        else:
            out.convert.append(name)
    return out


def any_linear_shape(module: nn.Module) -> tuple[int, int] | None:
    """(in, out) of a plain linear, a Conv1D or an FP8 linear (te.Linear, Float8Linear and the
    emulated linear all carry in_features and out_features), else None."""
    if (shape := linear_shape(module)) is not None:
        return shape
    in_f, out_f = getattr(module, "in_features", None), getattr(module, "out_features", None)
    return (in_f, out_f) if isinstance(in_f, int) and isinstance(out_f, int) else None


def weight_elements(modules: list[nn.Module]) -> int:
    """Weight values of these linear layers (what an FP8 weight copy holds, 1 byte each)."""
    return sum(math.prod(any_linear_shape(m) or (0, 0)) for m in modules)


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent_name, _, child = name.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), child


def as_linear(module: nn.Module) -> nn.Linear:
    """A Conv1D as the nn.Linear it is (weight transposed, copied); an nn.Linear unchanged."""
    if type(module) is nn.Linear:
        return module
    weight = module.weight.detach()  # type: ignore[operator]
    bias = getattr(module, "bias", None)
    linear = nn.Linear(weight.shape[0], weight.shape[1], bias=bias is not None,
                       device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        linear.weight.copy_(weight.t())
        if bias is not None:
            linear.bias.copy_(bias)
    return linear


def swap(model: nn.Module, names: list[str], make: Callable[[nn.Linear], nn.Module]) -> nn.Module:
    """Replace each named module by make(its nn.Linear form), in place; returns the model."""
    for name in names:
        parent, child = _parent(model, name)
        setattr(parent, child, make(as_linear(getattr(parent, child))))
    return model


def linearize(model: nn.Module, names: list[str]) -> nn.Module:
    """Turn the named Conv1D layers into nn.Linear (torchao converts nn.Linear only)."""
    return swap(model, [n for n in names if is_conv1d(model.get_submodule(n))], lambda lin: lin)


def share_parameters(new: nn.Module, old: nn.Linear) -> nn.Module:
    """Give `new` the very parameters of `old` (same values, same tensors)."""
    new.weight = old.weight
    new.bias = old.bias
    return new


def copy_parameters(new: nn.Module, old: nn.Linear) -> nn.Module:
    """Copy `old`'s values into `new`'s own parameters (other dtype or device allowed)."""
    with torch.no_grad():
        new.weight.copy_(old.weight)  # type: ignore[operator]
        if old.bias is not None:
            new.bias.copy_(old.bias)  # type: ignore[operator]
    return new


# -- the rule checked at load ------------------------------------------------------------------

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
