"""FP8 as a model converter: after any model is built, swap the linear layers a filter allows
for FP8 linears (te.Linear, torchao Float8Linear, mpbench's emulated linear), weights kept.

As torchtitan converts models, the filter decides by module name (globs) and by shape: a
layer with a dimension not divisible by 16, and the LM head, stay in BF16 by default
(`fp8_filter` in a recipe's options changes that). A layer whose weight is shared with
another module (tied embeddings) also stays, so the tie holds. Transformers' GPT-2 uses
Conv1D (the transposed weight of a linear): a selected Conv1D is first replaced by the
equivalent nn.Linear.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

ALIGN = 16


class Fp8Filter(BaseModel):
    """Which linear layers become FP8 (module names as model.named_modules() spells them)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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


__all__ = ["Fp8Filter", "Plan", "copy_parameters", "linear_shape", "linearize", "plan",
           "share_parameters", "swap"]
