"""Keep a profiler's extra training steps from changing the model the run evaluates."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


@contextlib.contextmanager
def weights_restored(model: nn.Module) -> Iterator[int]:
    """Copy parameters and buffers to host memory, run the block, copy them back.

    Profilers that train extra steps after the measured window (profiling windows, batch
    size searches) would otherwise shift the eval loss that follows. Host memory is used
    so a GPU search sees the same device memory as the run. Yields the bytes held.
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
                live[name].copy_(value)
