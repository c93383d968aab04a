"""FLOPs per token by formula, cross-checked with torch.utils.flop_counter on a meta model."""

from __future__ import annotations

import functools

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from mpbench.models import build_model, flops_per_token
from mpbench.models.config import ModelConfig
from mpbench.models.gpt import GPT
from mpbench.models.llama import Llama


@functools.lru_cache(maxsize=32)
def counted_flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Count one forward+backward of a batch-1 sequence on the meta device (no memory, no time).

    The math SDPA backend is forced so attention shows up as matmuls the counter sees
    (the CPU flash kernel is not registered with the counter).
    """
    with torch.device("meta"):
        model = GPT(cfg) if cfg.arch == "gpt" else Llama(cfg)
        idx = torch.zeros((1, seq_len), dtype=torch.long)
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        model(idx, idx).backward()
    return counter.get_total_flops() / seq_len


def flops_summary(cfg: ModelConfig, seq_len: int) -> tuple[float, float | None, str | None]:
    """(formula, counter, note). The note says when the two differ by more than 2%."""
    formula = flops_per_token(cfg, seq_len)
    try:
        counted: float | None = counted_flops_per_token(cfg, seq_len)
    except Exception as exc:  # the counter is a cross-check; its failure must not stop a run
        return formula, None, f"flop counter failed: {type(exc).__name__}: {exc}"
    note = None
    assert counted is not None
    if abs(counted - formula) / formula > 0.02:
        note = (f"formula 6N+12LHQT = {formula:.4g} and flop counter = {counted:.4g} "
                f"differ by {abs(counted - formula) / formula:.1%}")
    return formula, counted, note


__all__ = ["build_model", "counted_flops_per_token", "flops_summary"]
