"""Keep a profiler's extra training steps from changing the model the run evaluates."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

EXTRA_STATE = "_extra_state"
"""The state_dict key suffix of nn.Module.get_extra_state (torch.nn.modules.module)."""


def _owner(model: nn.Module, name: str) -> nn.Module | None:
    """The module whose get_extra_state produced `name`, or None for a parameter/buffer."""
    path, _, leaf = name.rpartition(".")
    if leaf != EXTRA_STATE:
        return None
    return model.get_submodule(path) if path else model


@contextlib.contextmanager
def weights_restored(model: nn.Module) -> Iterator[int]:
    """Copy parameters, buffers and extra state to host memory, run the block, put them back.

    Profilers that train extra steps after the measured window (profiling windows, batch
    size searches) would otherwise shift the eval loss that follows, and leave FP8 scaling
    state (TransformerEngine's delayed-scaling amax history and scales) as those steps made
    it. Host memory is used so a GPU search sees the same device memory as the run. Yields
    the bytes held.

    Extra state is no view of the module: TE's get_extra_state (pytorch/module/base.py, read
    upstream) serializes its fp8_meta (scale, scale_inv, amax_history per direction) into a
    new CPU tensor on every state_dict() call, so copying into that tensor changes
    nothing. It goes back through the module's set_extra_state, as load_state_dict does.
    """
    saved = {name: t.detach().to("cpu", copy=True) for name, t in model.state_dict().items()
             if isinstance(t, torch.Tensor)}
    held = sum(t.numel() * t.element_size() for t in saved.values())
    try:
        yield held
    finally:
        with torch.no_grad():
            live = model.state_dict()
            for name, value in saved.items():
                owner = _owner(model, name)
                if owner is not None:
                    owner.set_extra_state(value)
                else:
                    live[name].copy_(value)
