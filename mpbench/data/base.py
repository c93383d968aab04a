"""A token source: a train and a validation stream of token ids, sampled reproducibly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class TokenSource:
    name: str
    train: np.ndarray
    val: np.ndarray
    vocab_size: int
    entropy_floor: float | None = None
    """Lowest achievable loss in nats/token, when the source knows it (synthetic)."""
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._train_t = torch.from_numpy(self.train.astype(np.int64))
        self._val_t = torch.from_numpy(self.val.astype(np.int64))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "vocab_size": self.vocab_size,
            "train_tokens": int(self.train.size),
            "val_tokens": int(self.val.size),
            "entropy_floor": self.entropy_floor,
            **self.details,
        }

    def batch(
        self, split: str, batch_size: int, seq_len: int, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random windows (B, T) and their next-token targets, drawn with `gen`."""
        data = self._train_t if split == "train" else self._val_t
        if data.numel() <= seq_len + 1:
            raise ValueError(f"{split} split has {data.numel()} tokens, fewer than seq_len+1")
        starts = torch.randint(0, data.numel() - seq_len - 1, (batch_size,), generator=gen)
        offsets = torch.arange(seq_len + 1)
        windows = data[starts[:, None] + offsets]  # (B, T+1)
        return windows[:, :-1].contiguous(), windows[:, 1:].contiguous()
