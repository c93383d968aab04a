"""Hugging Face Transformers causal LMs built from a config, with random weights, offline.

`{hf: <model_type>, <config key>: value, ...}` builds `AutoConfig.for_model(model_type,
**overrides)`; `{hf_config: path}` reads the config.json that sits next to a checkpoint.
Nothing is downloaded: only the config classes and `AutoModelForCausalLM.from_config` are
used. transformers is imported only when such an entry is used (`pip install 'mpbench[hf]'`).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mpbench.errors import ModelEntryError
from mpbench.models.reference import as_fp32

INSTALL = "pip install 'mpbench[hf]'"
DEFAULT_ATTN = "sdpa"


def import_transformers() -> ModuleType:
    try:
        transformers = importlib.import_module("transformers")
    except ImportError as exc:
        raise ModelEntryError("hf", f"transformers is not installed ({exc.name}); {INSTALL}") from None
    transformers.logging.set_verbosity_error()  # bos/eos outside a shrunk vocabulary, ...
    return transformers


def causal_lm_types() -> dict[str, str]:
    """model_type -> the AutoModelForCausalLM class name Transformers maps it to."""
    import_transformers()
    names = importlib.import_module("transformers.models.auto.modeling_auto")
    return dict(names.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)


def _check_type(model_type: str, field: str) -> None:
    types = causal_lm_types()
    if model_type not in types:
        close = difflib.get_close_matches(model_type, sorted(types), n=3)
        hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
        raise ModelEntryError(field, f"unknown or non-causal-LM model_type '{model_type}'; {hint}"
                              f"give a Transformers causal LM type (llama, qwen2, mistral, gpt2, "
                              f"gemma, ...)")


def _config_class(model_type: str) -> Any:
    mapping = importlib.import_module("transformers.models.auto.configuration_auto").CONFIG_MAPPING
    return mapping[model_type]


LEGACY_KEYS = {"rope_theta", "rope_scaling", "torch_dtype"}
"""Keys of older config.json files that Transformers still reads (rope_parameters since v5)."""


def _check_overrides(cls: Any, overrides: dict[str, Any]) -> None:
    """A key the config class does not know would be stored and silently ignored: refuse it."""
    valid = (set(cls().to_dict()) | set(getattr(cls, "attribute_map", {})) | LEGACY_KEYS
             | set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs"})
    for key in overrides:
        if key not in valid:
            close = difflib.get_close_matches(key, sorted(valid), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ModelEntryError(key, f"not a field of {cls.__name__}; {hint}remove it or fix "
                                  "the spelling")


def read_config_file(path: str, base_dir: Path | None) -> dict[str, Any]:
    file = Path(path)
    if not file.is_absolute() and base_dir is not None and (base_dir / file).exists():
        file = base_dir / file
    if file.is_dir():
        file = file / "config.json"
    if not file.is_file():
        raise ModelEntryError("hf_config", f"config file not found: {path}; give the path of a "
                              "Transformers config.json (relative to the suite file or the cwd)")
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelEntryError("hf_config", f"{file} is not JSON ({exc}); give a Transformers "
                              "config.json") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("model_type"), str):
        raise ModelEntryError("hf_config", f"{file} has no model_type; give a Transformers "
                              "config.json (it names its model_type)")
    return raw


def make_config(model_type: str | None, config_path: str | None, overrides: dict[str, Any],
                base_dir: Path | None) -> Any:
    """The PretrainedConfig an entry describes (overrides applied through __init__, so derived
    fields such as head_dim follow them)."""
    import_transformers()
    if config_path is not None:
        raw = read_config_file(config_path, base_dir)
        model_type, field = raw["model_type"], "hf_config"
    else:
        assert model_type is not None
        raw, field = {}, "hf"
    _check_type(model_type, field)
    cls = _config_class(model_type)
    _check_overrides(cls, overrides)
    try:
        return cls.from_dict({**raw, **overrides})
    except Exception as exc:  # the config's own validation (head counts, rope settings, ...)
        reason = " ".join(str(exc).split())
        raise ModelEntryError(field, f"{cls.__name__} refused the settings: {reason}") from None


def max_positions(config: Any) -> int | None:
    for key in ("max_position_embeddings", "n_positions"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def config_dict(config: Any) -> dict[str, Any]:
    """The whole config, JSON-safe, enough to rebuild the model (AutoConfig.for_model(**it))."""
    return json.loads(config.to_json_string(use_diff=False))


def resolve_attn(config: Any, requested: str | None) -> str:
    """The attention implementation the model will use: the requested one, else sdpa where
    the architecture supports it and eager where not (Transformers' own default)."""
    if requested:
        return requested
    transformers = import_transformers()
    try:
        cls = transformers.AutoModelForCausalLM._model_mapping[type(config)]
    except (KeyError, AttributeError):
        return DEFAULT_ATTN
    return DEFAULT_ATTN if getattr(cls, "_supports_sdpa", True) else "eager"


def build_hf(config: Any, attn_implementation: str | None) -> nn.Module:
    transformers = import_transformers()
    model: nn.Module = transformers.AutoModelForCausalLM.from_config(
        config, attn_implementation=attn_implementation or DEFAULT_ATTN)
    return as_fp32(model)



class HFCausalLM(nn.Module):
    """The loop's contract around a Transformers causal LM: (input_ids, targets) -> loss.

    `targets` are the inputs shifted by one (mpbench's batches), so the loss is the plain
    cross-entropy of every position, taken in FP32 as for the reference models; with
    labels = the unshifted sequence Transformers computes the same number.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.hf = model
        self._checkpointing = False

    @property
    def activation_checkpointing(self) -> bool:
        return self._checkpointing

    @activation_checkpointing.setter
    def activation_checkpointing(self, on: bool) -> None:
        model: Any = self.hf
        kwargs = {"use_reentrant": False}
        if on and hasattr(model, "activation_checkpointing_enable"):  # Transformers >= 5
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        elif on:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        elif self._checkpointing and hasattr(model, "activation_checkpointing_disable"):
            model.activation_checkpointing_disable()
        elif self._checkpointing:
            model.gradient_checkpointing_disable()
        self._checkpointing = on

    @property
    def attn_implementation(self) -> str | None:
        return getattr(getattr(self.hf, "config", None), "_attn_implementation", None)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.hf(input_ids=idx, use_cache=False).logits  # (B, T, vocab)
        if targets is None:
            return logits
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))


__all__ = ["HFCausalLM", "build_hf", "causal_lm_types", "config_dict", "import_transformers",
           "make_config", "max_positions"]
