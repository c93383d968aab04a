"""One way from a suite's model entry to a model: facts first (cheap), then the module.

Every model, reference or not, comes out of `build_entry` as an FP32 torch module with the
loop's contract, forward(input_ids, targets) -> loss (and forward(input_ids) -> logits);
precision recipes convert it afterwards (FP8 linears, BF16 casts).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from mpbench.config.model_sizes import MODEL_SIZES, ModelConfig
from mpbench.errors import ModelEntryError

if TYPE_CHECKING:
    from mpbench.config.schema import ModelSpec


@dataclass(frozen=True)
class ModelFacts:
    kind: str
    """reference, hf or module."""
    architecture: str
    """gpt / llama (mpbench's), the Transformers class (LlamaForCausalLM), or the factory."""
    vocab_size: int
    max_seq_len: int | None
    """Longest sequence the model takes (None: unbounded)."""
    dims: dict[str, Any]
    source: dict[str, Any]
    """What the model was built from, enough to rebuild it."""
    attn_implementation: str | None = None
    reference: ModelConfig | None = None
    hf_config: Any = field(default=None, compare=False, repr=False)


def resolve_model_config(spec: ModelSpec, seq_len: int, data_vocab: int) -> ModelConfig:
    """A named size with overrides, or inline dimensions; vocab from the data unless set."""
    base = MODEL_SIZES[spec.size] if spec.size else None
    dims = {
        k: getattr(spec, k)
        for k in ("n_layer", "n_head", "n_embd", "n_kv_head", "ffn_hidden", "block_size")
    }
    vocab = spec.vocab_size or data_vocab
    if base is not None:
        return base.with_overrides(**dims, vocab_size=vocab)
    assert spec.arch is not None  # guaranteed by ModelSpec validation
    return ModelConfig(
        arch=spec.arch, n_layer=dims["n_layer"], n_head=dims["n_head"], n_embd=dims["n_embd"],
        block_size=dims["block_size"] or max(seq_len, 128),
        vocab_size=vocab, n_kv_head=dims["n_kv_head"], ffn_hidden=dims["ffn_hidden"],
        bias=spec.arch == "gpt",
    )


def _hf_facts(spec: ModelSpec, base_dir: Path | None) -> ModelFacts:
    from mpbench.models import hf

    overrides = dict(spec.config)
    if spec.vocab_size is not None:
        overrides["vocab_size"] = spec.vocab_size
    config = hf.make_config(spec.hf, spec.hf_config, overrides, base_dir)
    arch = (getattr(config, "architectures", None) or [None])[0] or hf.causal_lm_types()[
        config.model_type]
    ffn = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None)
    dims = {"arch": config.model_type, "n_layer": config.num_hidden_layers,
            "n_head": config.num_attention_heads,
            "n_kv_head": getattr(config, "num_key_value_heads", None),
            "n_embd": config.hidden_size, "ffn_dim": ffn, "vocab_size": config.vocab_size,
            "block_size": hf.max_positions(config)}
    source = {"kind": "hf", "model_type": config.model_type, "hf_config_path": spec.hf_config,
              "overrides": overrides, "config": hf.config_dict(config)}
    return ModelFacts("hf", str(arch), int(config.vocab_size), hf.max_positions(config), dims,
                      source, hf.resolve_attn(config, spec.attn_implementation), None, config)


@functools.lru_cache(maxsize=16)
def _module_facts(target: str, args_json: str, returns: str, vocab: int | None,
                  max_len: int | None, base_dir: Path | None) -> ModelFacts:
    from mpbench.models import user

    factory = user.import_factory(target, base_dir)
    args = json.loads(args_json)
    try:  # on the meta device: no memory, no time, even for a big model
        with torch.device("meta"):
            model = user.call_factory(target, factory, args)
    except ModelEntryError as exc:
        if exc.field != "args":
            raise
        model = user.call_factory(target, factory, args)  # factories that need real tensors
    vocab = vocab or user.declared_vocab(model)
    if vocab is None:
        raise ModelEntryError("vocab_size", f"{target} declares no vocabulary; set vocab_size "
                              "in the entry or give the module a vocab_size attribute")
    max_len = max_len or user.declared_max_len(model)
    dims = {"arch": "module", "vocab_size": vocab, "block_size": max_len}
    source = {"kind": "module", "factory": target, "args": args, "returns": returns,
              "class": f"{type(model).__module__}.{type(model).__qualname__}"}
    return ModelFacts("module", type(model).__qualname__, vocab, max_len, dims, source)


def model_facts(spec: ModelSpec, seq_len: int, data_vocab: int,
                base_dir: Path | None = None) -> ModelFacts:
    """What a model entry is, without building its weights (ModelEntryError when it cannot be)."""
    if spec.kind == "hf":
        return _hf_facts(spec, base_dir)
    if spec.kind == "module":
        assert spec.module is not None
        return _module_facts(spec.module, json.dumps(spec.args, sort_keys=True), spec.returns,
                             spec.vocab_size, spec.max_seq_len, base_dir)
    cfg = resolve_model_config(spec, seq_len, data_vocab)
    return ModelFacts("reference", cfg.arch, cfg.vocab_size, cfg.block_size, cfg.as_dict(),
                      {"kind": "reference", "size": spec.size, "dims": cfg.as_dict()},
                      "sdpa", cfg)


def check_fits(facts: ModelFacts, seq_len: int, data_vocab: int) -> ModelEntryError | None:
    """The model against the data's vocabulary and the sequence length, or None."""
    if facts.vocab_size < data_vocab:
        return ModelEntryError("vocab_size", f"the model's vocabulary {facts.vocab_size} is "
                               f"smaller than the data's {data_vocab}; set a vocab_size of at "
                               f"least {data_vocab} or use data with fewer token ids")
    if facts.max_seq_len is not None and seq_len > facts.max_seq_len:
        return ModelEntryError("seq_len", f"{seq_len} is over the model's maximum "
                               f"{facts.max_seq_len}; lower train.seq_len or raise the model's "
                               "maximum length")
    return None


def build_entry(spec: ModelSpec, facts: ModelFacts, seed: int) -> nn.Module:
    """The FP32 model with the loop's contract; weights depend only on the seed."""
    if facts.reference is not None:
        from mpbench.models.reference import build_model

        return build_model(facts.reference, seed)
    torch.manual_seed(seed)  # Transformers' and users' inits draw from the global generator
    if facts.kind == "hf":
        from mpbench.models.hf import HFCausalLM, build_hf

        return HFCausalLM(build_hf(facts.hf_config, facts.attn_implementation))
    from mpbench.models import user
    from mpbench.models.reference import as_fp32

    assert spec.module is not None
    factory = user.import_factory(spec.module, None)
    return user.UserCausalLM(as_fp32(user.call_factory(spec.module, factory, spec.args)),
                             spec.returns)


__all__ = ["ModelFacts", "build_entry", "check_fits", "model_facts",
           "resolve_model_config"]
