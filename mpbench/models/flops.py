"""FLOPs per token: the closed formula for the reference models (cross-checked with
torch.utils.flop_counter), the flop counter itself for every other model.

Counting needs no memory and no time: the model is built on the meta device (reference
models) or with fake, meta-backed tensors (Transformers' and users' models, whose forward
code may inspect tensor values that meta tensors do not have).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from mpbench.config.model_sizes import ModelConfig
from mpbench.config.schema import ModelSpec
from mpbench.models.entry import ModelFacts, build_entry
from mpbench.models.reference import GPT, Llama

FORMULA = "formula"
COUNTER = "flop_counter"


@dataclass(frozen=True)
class Flops:
    per_token: float | None
    """The headline: the formula where one is known, else the counter."""
    counter: float | None
    note: str | None
    method: str
    """formula (6N + 12LHQT, counter as a cross-check), flop_counter, or none."""


def matmul_parameters(cfg: ModelConfig) -> int:
    """Parameters that take part in matmuls: every linear weight, the LM head included."""
    d, f, L = cfg.n_embd, cfg.ffn_dim, cfg.n_layer
    if cfg.arch == "gpt":
        per_layer = d * 3 * d + d * d + 2 * d * f
    else:
        kv = cfg.kv_heads * cfg.head_dim
        per_layer = d * d + d * 2 * kv + d * d + d * 2 * f + f * d
    return L * per_layer + d * cfg.vocab_size


def flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Training FLOPs per token, 6*N + 12*L*H*Q*T (PaLM appendix B; nanoGPT, torchtitan).

    N counts matmul parameters (LM head included, embeddings lookups excluded);
    the attention term counts the full T x T score and value matmuls (no causal discount).
    """
    return 6.0 * matmul_parameters(cfg) + 12.0 * cfg.n_layer * cfg.n_head * cfg.head_dim * seq_len


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


_SPECS: dict[str, tuple[ModelSpec, ModelFacts]] = {}


@functools.lru_cache(maxsize=32)
def _counted_entry(key: str, seq_len: int) -> float:
    from torch._subclasses.fake_tensor import FakeTensorMode

    spec, facts = _SPECS[key]
    if facts.attn_implementation == "flash_attention_2":  # CUDA-only; eager costs the same
        facts = dataclasses.replace(facts, attn_implementation="eager")
    with FakeTensorMode():
        model = build_entry(spec, facts, seed=0)
        idx = torch.zeros((1, seq_len), dtype=torch.long)
        with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
            model(idx, idx).backward()
    return counter.get_total_flops() / seq_len


def counted_entry_flops(spec: ModelSpec, facts: ModelFacts, seq_len: int) -> float:
    """Training FLOPs per token of any model entry, from FlopCounterMode on fake tensors."""
    key = json.dumps({"source": facts.source, "returns": spec.returns}, sort_keys=True,
                     default=str)
    _SPECS[key] = (spec, facts)
    return _counted_entry(key, seq_len)


def flops_for(spec: ModelSpec, facts: ModelFacts, seq_len: int) -> Flops:
    if facts.reference is not None:
        formula, counted, note = flops_summary(facts.reference, seq_len)
        return Flops(formula, counted, note, FORMULA)
    try:
        counted = counted_entry_flops(spec, facts, seq_len)
    except Exception as exc:  # no FLOPs means no MFU, never a failed run
        return Flops(None, None, f"flop counter failed: {type(exc).__name__}: {exc}"[:300], "none")
    return Flops(counted, counted, None, COUNTER)
