"""An example user model for mpbench: plain PyTorch, no mpbench import.

mpbench's contract for `{module: "tiny_lm:build", args: {...}}` entries:
- build(**args) returns a torch.nn.Module (FP32);
- forward(input_ids) -> logits (B, T, vocab) (`returns: logits`, the default), or
  forward(input_ids, targets) -> mean cross-entropy (`returns: loss`);
- `vocab_size` and `max_seq_len` attributes declare the vocabulary and the longest sequence
  (or give vocab_size / max_seq_len in the suite entry).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.up = nn.Linear(dim, 4 * dim)
        self.down = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, T, 3, self.heads, C // self.heads).unbind(2)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                           v.transpose(1, 2), is_causal=True)
        x = x + self.out(y.transpose(1, 2).reshape(B, T, C))
        return x + self.down(F.gelu(self.up(self.norm2(x))))


class TinyLM(nn.Module):
    def __init__(self, vocab_size: int, dim: int, layers: int, heads: int, max_seq_len: int) -> None:
        super().__init__()
        self.vocab_size, self.max_seq_len = vocab_size, max_seq_len
        self.tok = nn.Embedding(vocab_size, dim)
        self.pos = nn.Embedding(max_seq_len, dim)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, vocab_size, bias=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.tok(input_ids) + self.pos(torch.arange(input_ids.shape[1], device=input_ids.device))
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.norm(x))


def build(vocab_size: int = 256, dim: int = 64, layers: int = 2, heads: int = 4,
          max_seq_len: int = 256) -> TinyLM:
    return TinyLM(vocab_size, dim, layers, heads, max_seq_len)
