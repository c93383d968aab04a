"""The reference transformers: GPT-2 style (LayerNorm, GELU MLP, learned positions, tied
embeddings) and Llama style (RMSNorm, SwiGLU MLP, rotary positions, grouped-query attention).

Precision recipes swap the linear layers (TransformerEngine, torchao) through the linear
factory; the embeddings and the LM head are always built as plain torch modules.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from mpbench.config.model_sizes import ModelConfig

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


def build_model(cfg: ModelConfig, seed: int, linear: LinearFactory = torch_linear) -> nn.Module:
    """Build a model on the CPU in fp32 with weights that depend only on (seed, names, shapes)."""
    model: nn.Module = GPT(cfg, linear) if cfg.arch == "gpt" else Llama(cfg, linear)
    init_parameters(model, seed, cfg.n_layer)
    return model


# -- GPT-2 ------------------------------------------------------------------------------------

class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig, linear: LinearFactory) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = linear(cfg.n_embd, 3 * cfg.n_embd, cfg.bias)
        self.proj = linear(cfg.n_embd, cfg.n_embd, cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.proj(y)


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig, linear: LinearFactory) -> None:
        super().__init__()
        self.fc = linear(cfg.n_embd, cfg.ffn_dim, cfg.bias)
        self.proj = linear(cfg.ffn_dim, cfg.n_embd, cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class GPTBlock(nn.Module):
    def __init__(self, cfg: ModelConfig, linear: LinearFactory) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg, linear)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg, linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig, linear: LinearFactory = torch_linear) -> None:
        super().__init__()
        self.cfg = cfg
        self.activation_checkpointing = False
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.blocks = nn.ModuleList(GPTBlock(cfg, linear) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying, as in GPT-2

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        _B, T = idx.shape
        pos = torch.arange(T, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)  # (B, T, C)
        for block in self.blocks:
            if self.activation_checkpointing and self.training:
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        logits = self.lm_head(self.ln_f(x))  # (B, T, vocab)
        if targets is None:
            return logits
        # The loss is taken in fp32 whatever the compute dtype (bf16-pure included).
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1))


# -- Llama ------------------------------------------------------------------------------------

def rope_tables(head_dim: int, max_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)  # (T, hs/2)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: (B, nh, T, hs); rotate the (even, odd) halves pairwise
    x1, x2 = x.float().chunk(2, dim=-1)
    rotated = torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return rotated.to(x.dtype)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, linear: LinearFactory) -> None:
        super().__init__()
        self.n_head, self.n_kv_head = cfg.n_head, cfg.kv_heads
        self.head_dim = cfg.n_embd // cfg.n_head
        self.q = linear(cfg.n_embd, cfg.n_head * self.head_dim, False)
        self.kv = linear(cfg.n_embd, 2 * self.n_kv_head * self.head_dim, False)
        self.proj = linear(cfg.n_head * self.head_dim, cfg.n_embd, False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q = self.q(x).view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        k, v = self.kv(x).view(B, T, 2 * self.n_kv_head, self.head_dim).transpose(1, 2).chunk(2, dim=1)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)  # k, v: (B, nkv, T, hs)
        if self.n_kv_head != self.n_head:  # grouped-query attention: share each kv head
            k = k.repeat_interleave(self.n_head // self.n_kv_head, dim=1)  # (B, nh, T, hs)
            v = v.repeat_interleave(self.n_head // self.n_kv_head, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)
        return self.proj(y.transpose(1, 2).reshape(B, T, C))


class SwiGLU(nn.Module):
    def __init__(self, cfg: ModelConfig, linear: LinearFactory) -> None:
        super().__init__()
        self.gate_up = linear(cfg.n_embd, 2 * cfg.ffn_dim, False)
        self.proj = linear(cfg.ffn_dim, cfg.n_embd, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)  # (B, T, ffn) each
        return self.proj(F.silu(gate) * up)


class LlamaBlock(nn.Module):
    def __init__(self, cfg: ModelConfig, linear: LinearFactory) -> None:
        super().__init__()
        self.attn_norm = nn.RMSNorm(cfg.n_embd, eps=cfg.norm_eps)
        self.attn = Attention(cfg, linear)
        self.mlp_norm = nn.RMSNorm(cfg.n_embd, eps=cfg.norm_eps)
        self.mlp = SwiGLU(cfg, linear)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.mlp(self.mlp_norm(x))


class Llama(nn.Module):
    def __init__(self, cfg: ModelConfig, linear: LinearFactory = torch_linear) -> None:
        super().__init__()
        self.cfg = cfg
        self.activation_checkpointing = False
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.blocks = nn.ModuleList(LlamaBlock(cfg, linear) for _ in range(cfg.n_layer))
        self.norm = nn.RMSNorm(cfg.n_embd, eps=cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.rope_cos: torch.Tensor
        self.rope_sin: torch.Tensor
        cos, sin = rope_tables(cfg.n_embd // cfg.n_head, cfg.block_size, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        _B, T = idx.shape
        cos, sin = self.rope_cos[:T], self.rope_sin[:T]  # (T, hs/2)
        x = self.tok_embeddings(idx)  # (B, T, C)
        for block in self.blocks:
            if self.activation_checkpointing and self.training:
                x = checkpoint(block, x, cos, sin, use_reentrant=False)
            else:
                x = block(x, cos, sin)
        logits = self.lm_head(self.norm(x))  # (B, T, vocab)
        if targets is None:
            return logits
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1))
