"""A few whole training steps of one model under several recipes, interleaved (A B A B): the
advisor's measured baseline step and the step with its linear layers kept out of the recipe.

Not a run: no record, no eval, no profilers; the same Stepper, optimizer and batches as a run
(train/loop.py), so a step here is the step a run times. Interleaving makes a busy machine slow
every recipe alike; the median of the timed steps is reported.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import torch

from mpbench.data import TokenSource
from mpbench.models.entry import build_entry
from mpbench.plan.spec import RunSpec
from mpbench.precision.base import Recipe
from mpbench.train.measure import synchronize
from mpbench.train.optim import make_stepper


def step_times(spec: RunSpec, recipes: Sequence[Recipe], source: TokenSource,
               device: torch.device, warmup: int = 2, steps: int = 6) -> list[list[float]]:
    """Per recipe, the wall time (ms) of `steps` training steps after `warmup` untimed ones."""
    cfg = spec.train
    facts = spec.model_facts(source.vocab_size)
    steppers = []
    for recipe in recipes:
        with recipe.activated():
            model = recipe.prepare(build_entry(spec.model, facts, spec.seed), device)
        steppers.append(make_stepper(model, recipe, cfg, device, warmup + steps))
    gen = torch.Generator().manual_seed(spec.seed)
    times: list[list[float]] = [[] for _ in recipes]
    for i in range(warmup + steps):
        x, y = source.batch("train", cfg.batch_size, cfg.seq_len, gen)
        x, y = x.to(device), y.to(device)
        for k, (recipe, stepper) in enumerate(zip(recipes, steppers, strict=True)):
            with recipe.activated():
                synchronize(device)
                t0 = time.perf_counter()
                float(stepper(x, y).loss)  # the loop reads the loss every step, so do we
                synchronize(device)
            if i >= warmup:
                times[k].append((time.perf_counter() - t0) * 1e3)
    return times


def median_ms(times: Sequence[float]) -> float:
    return float(statistics.median(times))
