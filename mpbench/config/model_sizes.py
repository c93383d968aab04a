"""Model dimensions and the named sizes of the reference families."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

Arch = Literal["gpt", "llama"]


@dataclass(frozen=True)
class ModelConfig:
    arch: Arch
    n_layer: int
    n_head: int
    n_embd: int
    block_size: int
    vocab_size: int = 256
    """0 or unset in a suite means: take the data source's vocabulary."""
    n_kv_head: int | None = None
    """Llama only: key/value heads for grouped-query attention (None = n_head)."""
    ffn_hidden: int | None = None
    """MLP hidden width (None = 4*d for GPT, SwiGLU's 8/3*d rounded to 256 for Llama)."""
    bias: bool = True
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def kv_heads(self) -> int:
        return self.n_kv_head or self.n_head

    @property
    def ffn_dim(self) -> int:
        if self.ffn_hidden:
            return self.ffn_hidden
        if self.arch == "gpt":
            return 4 * self.n_embd
        hidden = int(2 * 4 * self.n_embd / 3)
        return 256 * ((hidden + 255) // 256)

    def with_overrides(self, **overrides: Any) -> ModelConfig:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ffn_dim": self.ffn_dim, "head_dim": self.head_dim}


def _gpt(n_layer: int, n_head: int, n_embd: int, block_size: int = 1024) -> ModelConfig:
    return ModelConfig("gpt", n_layer, n_head, n_embd, block_size, vocab_size=50304)


def _llama(n_layer: int, n_head: int, n_embd: int, n_kv: int, ffn: int, block: int) -> ModelConfig:
    return ModelConfig(
        "llama", n_layer, n_head, n_embd, block, vocab_size=32000, n_kv_head=n_kv,
        ffn_hidden=ffn, bias=False, rope_theta=500000.0,
    )


# Named sizes. vocab_size here is the family's own; a suite may replace it by the
# data's vocabulary (byte-level corpora use 256), which the record then shows.
MODEL_SIZES: dict[str, ModelConfig] = {
    "gpt-tiny": ModelConfig("gpt", 2, 2, 64, 256),
    "gpt-mini": ModelConfig("gpt", 4, 4, 128, 512),
    "gpt2-small": _gpt(12, 12, 768),
    "gpt2-medium": _gpt(24, 16, 1024),
    "gpt2-large": _gpt(36, 20, 1280),
    "gpt2-xl": _gpt(48, 25, 1600),
    "llama-tiny": ModelConfig("llama", 2, 2, 64, 256, n_kv_head=1, bias=False),
    "llama-mini": ModelConfig("llama", 4, 4, 128, 512, n_kv_head=2, bias=False),
    "llama-150m": _llama(12, 12, 768, 4, 2048, 2048),
    "llama-1b": _llama(16, 32, 2048, 8, 8192, 2048),
}
