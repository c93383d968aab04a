"""Reference transformers (GPT-2 and Llama style) and their named sizes."""

from __future__ import annotations

from torch import nn

from mpbench.config.model_sizes import MODEL_SIZES, ModelConfig
from mpbench.models.gpt import GPT
from mpbench.models.layers import LinearFactory, count_parameters, init_parameters, torch_linear
from mpbench.models.llama import Llama

__all__ = [
    "MODEL_SIZES",
    "ModelConfig",
    "build_model",
    "count_parameters",
    "flops_per_token",
    "matmul_parameters",
]


def build_model(cfg: ModelConfig, seed: int, linear: LinearFactory = torch_linear) -> nn.Module:
    """Build a model on the CPU in fp32 with weights that depend only on (seed, names, shapes)."""
    model: nn.Module = GPT(cfg, linear) if cfg.arch == "gpt" else Llama(cfg, linear)
    init_parameters(model, seed, cfg.n_layer)
    return model


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
