"""A few whole training steps of one model under several recipes, interleaved (A B C, B C A,
C A B, ...: a busy machine slows every recipe alike, and none always follows the same one): the
advisor's measured baseline step and the step with its linear layers kept out of the recipe.

Not a run: no record, no eval, no profilers; the same Stepper, optimizer and batches as a run
(train/loop.py), so a step here is the step a run times; the median of the timed steps is
reported. A probe can be run on (StepProbe.run) where a decision needs more steps.
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


class StepProbe:
    """The models and steppers of `recipes`, warmed by `warmup` untimed steps, timed in turn
    step by step; `run` adds steps (the advisor asks for more only where its decision needs
    them). `times[k]` are recipe k's step times (ms), step i of each on the same batch."""

    def __init__(self, spec: RunSpec, recipes: Sequence[Recipe], source: TokenSource,
                 device: torch.device, warmup: int = 2, max_steps: int = 100) -> None:
        cfg = spec.train
        facts = spec.model_facts(source.vocab_size)
        self.recipes, self.source, self.device, self.cfg = list(recipes), source, device, cfg
        self.steppers = []
        for recipe in recipes:
            with recipe.activated():
                model = recipe.prepare(build_entry(spec.model, facts, spec.seed), device)
            self.steppers.append(make_stepper(model, recipe, cfg, device, warmup + max_steps))
        self.gen = torch.Generator().manual_seed(spec.seed)
        self.times: list[list[float]] = [[] for _ in recipes]
        self._turn = 0
        self._steps(warmup, timed=False)

    def run(self, steps: int) -> list[list[float]]:
        self._steps(steps, timed=True)
        return self.times

    def _steps(self, n: int, timed: bool) -> None:
        for _ in range(n):
            x, y = self.source.batch("train", self.cfg.batch_size, self.cfg.seq_len, self.gen)
            x, y = x.to(self.device), y.to(self.device)
            self._turn += 1  # rotate the order: no recipe always runs after the same one
            for j in range(len(self.recipes)):
                k = (j + self._turn) % len(self.recipes)
                recipe, stepper = self.recipes[k], self.steppers[k]
                with recipe.activated():
                    synchronize(self.device)
                    t0 = time.perf_counter()
                    float(stepper(x, y).loss)  # the loop reads the loss every step, so do we
                    synchronize(self.device)
                if timed:
                    self.times[k].append((time.perf_counter() - t0) * 1e3)


def step_times(spec: RunSpec, recipes: Sequence[Recipe], source: TokenSource,
               device: torch.device, warmup: int = 2, steps: int = 6) -> list[list[float]]:
    """Per recipe, the wall time (ms) of `steps` training steps after `warmup` untimed ones."""
    return StepProbe(spec, recipes, source, device, warmup, steps).run(steps)


def median_ms(times: Sequence[float]) -> float:
    return float(statistics.median(times))
