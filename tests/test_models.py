"""Reference models: sizes, FLOP counts against the counter, identical init across layer types."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from mpbench.config.model_sizes import MODEL_SIZES
from mpbench.models.flops import counted_flops_per_token, flops_per_token, flops_summary
from mpbench.models.reference import GPT, Llama, build_model, count_parameters

pytestmark = pytest.mark.unit


def meta_params(name: str, vocab: int) -> int:
    cfg = MODEL_SIZES[name].with_overrides(vocab_size=vocab)
    with torch.device("meta"):
        model = GPT(cfg) if cfg.arch == "gpt" else Llama(cfg)
    return count_parameters(model)


def test_gpt2_sizes_match_the_published_counts() -> None:
    # GPT-2 with its 50257-token vocabulary and tied embeddings.
    assert meta_params("gpt2-small", 50257) == 124_439_808
    assert meta_params("gpt2-medium", 50257) == 354_823_168
    assert 1.09e9 < meta_params("llama-1b", 32000) < 1.12e9


@pytest.mark.parametrize("name", ["gpt-tiny", "llama-tiny", "gpt2-small", "llama-1b"])
def test_formula_matches_flop_counter(name: str) -> None:
    cfg = MODEL_SIZES[name]
    seq = min(cfg.block_size, 256)
    formula, counted, note = flops_summary(cfg, seq)
    assert counted == pytest.approx(formula, rel=1e-9)
    assert note is None


def test_formula_by_hand_for_gpt_tiny() -> None:
    cfg = MODEL_SIZES["gpt-tiny"]  # L=2, H=2, d=64, vocab 256
    n_matmul = 2 * (64 * 192 + 64 * 64 + 2 * 64 * 256) + 64 * 256
    assert flops_per_token(cfg, 32) == 6 * n_matmul + 12 * 2 * 2 * 32 * 32
    assert counted_flops_per_token(cfg, 32) == 6 * n_matmul + 12 * 2 * 2 * 32 * 32


@pytest.mark.parametrize("name", ["gpt-tiny", "llama-tiny"])
def test_forward_shapes_and_loss(name: str) -> None:
    cfg = MODEL_SIZES[name]
    model = build_model(cfg, seed=0)
    x = torch.randint(0, cfg.vocab_size, (2, 16))
    assert model(x).shape == (2, 16, cfg.vocab_size)
    y = torch.randint(0, cfg.vocab_size, (2, 16))
    loss = model(x, y)
    # a freshly initialised model predicts close to uniform
    assert abs(loss.item() - torch.log(torch.tensor(float(cfg.vocab_size))).item()) < 0.5


def test_activation_checkpointing_gives_the_same_gradients() -> None:
    cfg = MODEL_SIZES["gpt-tiny"]
    x = torch.randint(0, cfg.vocab_size, (2, 16))
    grads = []
    for ckpt in (False, True):
        model: Any = build_model(cfg, seed=3)
        model.activation_checkpointing = ckpt
        model(x, x).backward()
        grads.append(model.blocks[0].mlp.fc.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


class OtherLinear(nn.Module):
    """A stand-in for te.Linear / Float8Linear: same parameter names, other class."""

    def __init__(self, i: int, o: int, bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(o, i))
        self.bias = nn.Parameter(torch.empty(o)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight, self.bias)


@pytest.mark.parametrize("name", ["gpt-tiny", "llama-tiny"])
def test_init_is_identical_whatever_the_linear_module(name: str) -> None:
    cfg = MODEL_SIZES[name]
    a: Any = build_model(cfg, seed=7)
    b: Any = build_model(cfg, seed=7, linear=OtherLinear)
    assert isinstance(b.blocks[0].mlp.proj, OtherLinear)
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert na == nb and torch.equal(pa, pb)
    c: Any = build_model(cfg, seed=8)
    assert not torch.equal(a.blocks[0].mlp.proj.weight, c.blocks[0].mlp.proj.weight)


def test_llama_grouped_query_attention_shapes() -> None:
    cfg = MODEL_SIZES["llama-tiny"]  # 2 heads, 1 kv head
    model: Any = build_model(cfg, seed=0)
    kv = model.blocks[0].attn.kv
    assert kv.weight.shape == (2 * 1 * cfg.head_dim, cfg.n_embd)
