"""Pieces shared by the reference models: the linear-layer factory and weight init.

Precision recipes swap the linear layers (TransformerEngine, torchao) through the
factory; the embeddings and the LM head are always built as plain torch modules.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

LinearFactory = Callable[[int, int, bool], nn.Module]
"""(in_features, out_features, bias) -> a module with `weight` (and `bias`) parameters."""


def torch_linear(in_features: int, out_features: int, bias: bool) -> nn.Module:
    return nn.Linear(in_features, out_features, bias=bias)


def residual_projection(name: str) -> bool:
    """Output projections of a residual branch get the GPT-2 scaled init."""
    return name.endswith(("attn.proj.weight", "mlp.proj.weight"))


@torch.no_grad()
def init_parameters(model: nn.Module, seed: int, n_layer: int) -> None:
    """Initialise every parameter from its name and shape with a seeded CPU generator.

    Because the values depend only on (seed, name, shape), a model built with other
    linear modules (te.Linear, Float8Linear) starts from exactly the same weights,
    which keeps quality comparisons between recipes fair.
    """
    gen = torch.Generator().manual_seed(seed)
    for name, param in sorted(model.named_parameters(), key=lambda item: item[0]):
        if param.ndim >= 2:
            std = 0.02 / math.sqrt(2 * n_layer) if residual_projection(name) else 0.02
            values = torch.randn(param.shape, generator=gen, dtype=torch.float32) * std
        elif name.endswith("bias"):
            values = torch.zeros(param.shape)
        else:  # norm scales
            values = torch.ones(param.shape)
        param.copy_(values.to(param.dtype))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def as_fp32(model: nn.Module) -> nn.Module:
    """FP32 master weights, as every recipe expects (a no-op, hence fake-tensor safe, if so)."""
    if any(p.is_floating_point() and p.dtype != torch.float32 for p in model.parameters()):
        model = model.float()
    return model
