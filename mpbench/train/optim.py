"""Optimizer, learning-rate schedule and the single training step shared by every recipe."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mpbench.config.schema import TrainConfig
from mpbench.precision.base import Recipe


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with decay on matrices only (nanoGPT's split); fused on CUDA."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    fused = device.type == "cuda"
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, fused=fused)


def lr_factor(cfg: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """Linear warm-up, then cosine / linear decay to min_lr_ratio, or constant."""

    def factor(step: int) -> float:
        if cfg.lr_warmup_steps and step < cfg.lr_warmup_steps:
            return (step + 1) / cfg.lr_warmup_steps
        if cfg.schedule == "constant":
            return 1.0
        span = max(1, total_steps - cfg.lr_warmup_steps)
        progress = min(1.0, (step - cfg.lr_warmup_steps) / span)
        if cfg.schedule == "linear":
            shape = 1.0 - progress
        else:
            shape = 0.5 * (1.0 + math.cos(math.pi * progress))
        return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * shape

    return factor


@dataclass
class StepResult:
    loss: torch.Tensor
    grad_norm: torch.Tensor | None


class Stepper:
    """One optimizer step: forward under the recipe's autocast, (scaled) backward, clip, step."""

    def __init__(
        self,
        model: Callable[..., torch.Tensor],
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        scaler: torch.amp.GradScaler | None,
        autocast: Callable[[], contextlib.AbstractContextManager[Any]],
        params: list[nn.Parameter],
        grad_clip: float | None,
    ) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.scaler, self.autocast, self.params, self.grad_clip = scaler, autocast, params, grad_clip

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> StepResult:
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            loss = self.model(x, y)
        grad_norm = None
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            if self.grad_clip:
                grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            if self.grad_clip:
                grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
            self.optimizer.step()
        if self.scaler is None:
            self.scheduler.step()
        else:  # a step GradScaler skipped (inf/NaN grads) is expected, not a misordered call
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler")
                self.scheduler.step()
        return StepResult(loss.detach(), grad_norm)


def step_forward(model: nn.Module, recipe: Recipe, cfg: TrainConfig
                 ) -> tuple[Callable[..., torch.Tensor], str | None]:
    """What a run's step calls: torch.compile(model) where train.compile asks for it and the
    recipe allows it, else the model; and the recipe's reason for running eager (or None).
    The runs and the advisor's step probe both take it from here."""
    refusal = recipe.compile_refusal(cfg) if cfg.compile else None
    if cfg.compile and refusal is None:
        return torch.compile(model), None
    return model, refusal


def make_stepper(model: nn.Module, recipe: Recipe, cfg: TrainConfig, device: torch.device,
                 total_steps: int, forward: Callable[..., torch.Tensor] | None = None) -> Stepper:
    """A run's training step: AdamW, the LR schedule over `total_steps`, the recipe's loss
    scaler and autocast. `forward`: what the step calls (the compiled model), else `model`."""
    optimizer = make_optimizer(model, cfg, device)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg, total_steps))
    return Stepper(forward if forward is not None else model, optimizer, scheduler,
                   recipe.make_scaler(device), lambda: recipe.autocast(device),
                   [p for p in model.parameters() if p.requires_grad], cfg.grad_clip)
