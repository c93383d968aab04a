"""Exact bytes autograd keeps for backward, counted with saved_tensors_hooks.

Every tensor saved for backward passes through the pack hook. Storages are counted once
(views such as q, k, v of one qkv output share a storage), parameters and buffers are left
out (they are model state, not activations), and low-precision copies of parameters made
by autocast (a ToCopy of a parameter, possibly seen through a view) are counted apart:
they exist only because of the precision, so they are reported on their own line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

_VIEW_FNS = ("TBackward0", "TransposeBackward0", "ViewBackward0", "PermuteBackward0",
             "ExpandBackward0", "UnsafeViewBackward0", "AliasBackward0", "SliceBackward0",
             "SplitBackward0", "AsStridedBackward0", "ReshapeAliasBackward0")


def storages(t: torch.Tensor) -> list[tuple[int, int]]:
    """(key, bytes) of the memory behind a tensor; wrapper subclasses (FP8 tensors) are
    unflattened into their inner tensors."""
    flatten = getattr(t, "__tensor_flatten__", None)
    if flatten is not None and type(t) is not torch.Tensor and not isinstance(t, nn.Parameter):
        inner, _ = flatten()
        out: list[tuple[int, int]] = []
        for attr in inner:
            out += storages(getattr(t, attr))
        return out
    try:
        s = t.untyped_storage()
        return [(s.data_ptr(), s.nbytes())]
    except (RuntimeError, NotImplementedError):  # no storage: count the visible bytes
        return [(id(t), t.numel() * t.element_size())]


def model_state_keys(model: nn.Module) -> set[int]:
    keys: set[int] = set()
    for t in list(model.parameters()) + list(model.buffers()):
        keys.update(k for k, _ in storages(t))
    return keys


def _is_param_copy(t: torch.Tensor, params: set[int]) -> bool:
    fn: Any = t.grad_fn
    while fn is not None and type(fn).__name__ in _VIEW_FNS:
        fn = fn.next_functions[0][0] if fn.next_functions else None
    if fn is None or type(fn).__name__ != "ToCopyBackward0" or not fn.next_functions:
        return False
    source = fn.next_functions[0][0]
    variable = getattr(source, "variable", None)  # AccumulateGrad holds the leaf
    return variable is not None and id(variable) in params


class SavedTensorCounter:
    """Count storages saved for backward while `counting()` is active."""

    def __init__(self, model: nn.Module) -> None:
        self.excluded = model_state_keys(model)
        self.param_ids = {id(p) for p in model.parameters()}
        self.activation: dict[int, int] = {}
        self.weight_copies: dict[int, int] = {}
        self.enabled = True

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            into = self.weight_copies if _is_param_copy(t, self.param_ids) else self.activation
            for key, nbytes in storages(t):
                if key not in self.excluded and key not in self.activation:
                    into.setdefault(key, nbytes)
        return t

    @contextlib.contextmanager
    def counting(self) -> Iterator[SavedTensorCounter]:
        with torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t):
            yield self

    @property
    def activation_bytes(self) -> int:
        return sum(self.activation.values())

    @property
    def weight_copy_bytes(self) -> int:
        return sum(b for k, b in self.weight_copies.items() if k not in self.activation)
