"""TransformerEngine's DelayedScaling rule for the emulated FP8 linear (fp8_emulated.py).

Each FP8 operand of a layer (input, weight, grad_output) is scaled by fp8_max / the largest
amax of its last `history_len` steps (amax_compute_algo "max", margin 0), with scale 1 before
any step was seen, as TE starts; the tensor's own amax joins the history after the cast, so a
value beyond the range the history predicts saturates. Current scaling, the emulation's
default, scales each cast by its own amax instead.
"""

from __future__ import annotations

import torch

AMAX_FLOOR = 1e-12
"""A history whose largest amax is this small scales as if it were this (finite scale)."""


class DelayedScaling:
    """Per operand of one layer: an amax history of `history_len` steps (newest first)."""

    def __init__(self, history_len: int) -> None:
        self.history_len = history_len
        self.history: dict[str, torch.Tensor] = {}

    def scale(self, operand: str, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """The scale for this step's cast of `x` (from earlier steps); records x's amax."""
        amax = x.detach().float().abs().amax().reshape(1)
        past = self.history.get(operand)
        if past is None:
            past = torch.zeros(self.history_len, device=x.device)
        seen = past.max()
        scale = torch.where(seen > 0, torch.finfo(dtype).max / seen.clamp(min=AMAX_FLOOR),
                            torch.ones_like(seen))
        self.history[operand] = torch.cat([amax, past[:-1]])
        return scale
