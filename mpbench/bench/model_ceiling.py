"""The ceiling on training's own terms: the model's linear-layer GEMMs, at the run's tokens
per step, under the recipe's autocast and matmul mode, on the training's torch threads.

A square GEMM in a storage dtype is not what training runs (on a CPU, autocast fp16 takes a
different kernel than an fp16 tensor's matmul, which is why training "beat" such a ceiling).
This times F.linear with each distinct (in, out) shape of the model's nn.Linear modules, the
weights in their own dtype, inputs as the layer receives them, through the same code path the
forward pass uses. Recipes that replace the linears (FP8, FP4) are not timed here: their
modules keep scaling state that a timing must not touch; they use the bench ceiling.
"""

from __future__ import annotations

import functools
from collections import Counter

import torch
from torch import nn
from torch.nn import functional as F

from mpbench.bench.timing import TimingConfig, time_op
from mpbench.precision.base import Recipe

# One warm-up and one timed call at the least: each call is one layer's forward GEMM, so even
# where a call is slow (fp16 on a CPU) the whole timing costs less than a training step per shape.
MODEL_TIMING = TimingConfig(warmup=1, min_reps=1, max_reps=20, min_time_s=0.05, max_case_s=0.5)


def linear_shapes(model: nn.Module) -> Counter[tuple[int, int, torch.dtype, bool]]:
    """(in_features, out_features, weight dtype, has bias) of every plain nn.Linear, counted."""
    return Counter((m.in_features, m.out_features, m.weight.dtype, m.bias is not None)
                   for m in model.modules() if type(m) is nn.Linear)


@torch.no_grad()
def model_gemm_ceiling(model: nn.Module, recipe: Recipe, device: torch.device, tokens: int,
                       timing: TimingConfig = MODEL_TIMING) -> tuple[float, str] | None:
    """(TFLOP/s, source) of the model's linear GEMM mix as training runs it, or None where the
    recipe converts the linears or the model has none."""
    if recipe.gemm_key() in ("fp8", "fp4") or recipe.numerics_only:
        return None
    shapes = linear_shapes(model)
    if not shapes:
        return None
    flops = seconds = 0.0
    with recipe.activated(), recipe.autocast(device):
        for (k, n, dtype, bias), count in shapes.items():
            x = torch.randn(tokens, k, device=device, dtype=dtype)
            w = torch.randn(n, k, device=device, dtype=dtype)
            b = torch.zeros(n, device=device, dtype=dtype) if bias else None
            t = time_op(functools.partial(F.linear, x, w, b), device, timing)
            flops += 2.0 * tokens * k * n * count
            seconds += t.median_ms * 1e-3 * count
    if seconds <= 0:
        return None
    source = (f"the model's {sum(shapes.values())} linear GEMMs ({len(shapes)} shapes) at "
              f"{tokens} tokens under the {recipe.name} recipe, {torch.get_num_threads()} "
              "torch threads")
    return flops / seconds / 1e12, source
