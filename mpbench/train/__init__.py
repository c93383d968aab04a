"""Plan and run training specs; write records.

`--device auto|cpu|cuda` -> a torch device lives here, apart from the runner: `mpbench list`
and `mpbench bench` need it without importing the training loop."""

from __future__ import annotations

import torch

from mpbench.errors import UserError


def resolve_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is visible to torch here; use --device cpu or auto")
    return torch.device(choice)
