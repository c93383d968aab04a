"""User models: `{module: "package.module:factory", args: {...}}`, any torch.nn.Module.

The contract (README, "Bring your own model"):
- the factory is called as factory(**args) and returns a torch.nn.Module in FP32;
- `returns: logits` (default): forward(input_ids (B, T) int64) -> logits (B, T, vocab), or an
  object with a `.logits` attribute; mpbench takes the FP32 cross-entropy;
  `returns: loss`: forward(input_ids, targets) -> the mean cross-entropy (a scalar);
- the vocabulary is the entry's vocab_size, else the module's `vocab_size` attribute (or
  `config.vocab_size`); the maximum length is the entry's max_seq_len, else the module's
  `max_seq_len` / `block_size` (or `config.max_position_embeddings`); none means unbounded;
- a module that honours activation checkpointing reads its `activation_checkpointing` flag.
The module's directory (the suite file's folder) is put on sys.path for the import.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mpbench.errors import ModelEntryError


def import_factory(target: str, search: Path | None) -> Callable[..., Any]:
    module_name, _, attr = target.partition(":")
    if search is not None and str(search) not in sys.path:
        sys.path.append(str(search))  # after the environment's own packages: shadows nothing
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == module_name or module_name.startswith(exc.name + ".")):
            raise ModelEntryError("module", f"no module named '{exc.name}'; put {module_name} next "
                                  "to the suite file or install its package") from None
        raise ModelEntryError("module", f"importing {module_name} failed: {exc}") from None
    except Exception as exc:
        raise ModelEntryError("module", f"importing {module_name} raised "
                              f"{type(exc).__name__}: {exc}") from None
    factory = getattr(module, attr, None)
    if factory is None:
        raise ModelEntryError("module", f"{module_name} has no attribute '{attr}'; name the "
                              "function that builds the model")
    if not callable(factory):
        raise ModelEntryError("module", f"{target} is not callable; name a function or class")
    return factory


def call_factory(target: str, factory: Callable[..., Any], args: dict[str, Any]) -> nn.Module:
    try:
        model = factory(**args)
    except Exception as exc:
        raise ModelEntryError("args", f"{target}(**args) raised {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}; fix args") from None
    if not isinstance(model, nn.Module):
        raise ModelEntryError("module", f"{target} returned {type(model).__name__}, not a "
                              "torch.nn.Module; return the model")
    return model


def _declared(module: nn.Module, names: tuple[str, ...], config_name: str) -> int | None:
    for name in names:
        value = getattr(module, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    value = getattr(getattr(module, "config", None), config_name, None)
    return value if isinstance(value, int) and value > 0 else None


def declared_vocab(module: nn.Module) -> int | None:
    return _declared(module, ("vocab_size",), "vocab_size")


def declared_max_len(module: nn.Module) -> int | None:
    return _declared(module, ("max_seq_len", "block_size"), "max_position_embeddings")


class UserCausalLM(nn.Module):
    """The loop's contract around a user module: (input_ids, targets) -> FP32 mean loss."""

    def __init__(self, model: nn.Module, returns: str) -> None:
        super().__init__()
        self.user = model
        self.returns = returns

    @property
    def activation_checkpointing(self) -> bool:
        return bool(getattr(self.user, "activation_checkpointing", False))

    @activation_checkpointing.setter
    def activation_checkpointing(self, on: bool) -> None:
        setattr(self.user, "activation_checkpointing", on)  # noqa: B010

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        if self.returns == "loss" and targets is not None:
            loss = self.user(idx, targets)
            return loss.float() if isinstance(loss, torch.Tensor) else loss
        out = self.user(idx)
        logits = out if isinstance(out, torch.Tensor) else out.logits
        if targets is None:
            return logits
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))


__all__ = ["UserCausalLM", "call_factory", "declared_max_len", "declared_vocab", "import_factory"]
