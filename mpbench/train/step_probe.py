"""A few whole training steps of one model under several recipes, in short blocks taken in
turn (A A A A, B B B B, C C C C, then B.., C.., A..: a busy machine slows every recipe alike,
and none always follows the same one): the advisor's measured baseline step and the step with
its linear layers kept out of the recipe. Each block's first step is untimed: right after
another model's step the caches hold that model's tensors, and a step timed there is slower
than a training run's (gpt-tiny fp32 on a CPU: 9.7 ms alternating step by step, 9.1 ms in
blocks; bf16/fp32 1.42 against 1.48-1.52 in blocks and 1.51 over 4 fresh-process runs).

Not a run: no record, no eval, no profilers; the same Stepper, optimizer, batches and
torch.compile setting as a run (train/loop.py), so a step here is the step a run times (the
warm-up steps take the compile); the median of the timed steps is reported. A probe can be
run on (StepProbe.run) where a decision needs more steps.
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
from mpbench.train.optim import make_stepper, step_forward


class StepProbe:
    """The models and steppers of `recipes`, warmed by `warmup` untimed steps (one-off costs;
    each block's untimed step warms again), timed in blocks of `block` steps taken in turn;
    `run` adds steps (the advisor asks for more only where its decision needs them).
    `times[k]` are recipe k's step times (ms), step i of each on the same batch."""

    def __init__(self, spec: RunSpec, recipes: Sequence[Recipe], source: TokenSource,
                 device: torch.device, warmup: int = 1, max_steps: int = 100,
                 block: int = 3) -> None:
        cfg = spec.train
        facts = spec.model_facts(source.vocab_size)
        self.recipes, self.source, self.device, self.cfg = list(recipes), source, device, cfg
        self.steppers = []
        untimed = warmup + -(-max_steps // block)  # a first, untimed step per block
        for recipe in recipes:
            base = build_entry(spec.model, facts, spec.seed)
            base.activation_checkpointing = cfg.activation_checkpointing  # type: ignore[assignment]
            with recipe.activated():
                model = recipe.prepare(base, device)
            forward, _ = step_forward(model, recipe, cfg)  # compiled where the run's is
            self.steppers.append(make_stepper(model, recipe, cfg, device, untimed + max_steps,
                                              forward))
        self.gen = torch.Generator().manual_seed(spec.seed)
        self.block = block
        self.times: list[list[float]] = [[] for _ in recipes]
        self._turn = 0
        self._round(warmup, timed=False)

    def run(self, steps: int) -> list[list[float]]:
        while steps > 0:
            self._round(min(self.block, steps), timed=True)
            steps -= self.block
        return self.times

    def _round(self, n: int, timed: bool) -> None:
        """Every recipe in turn: one untimed step (when timing), then `n` steps on the same
        `n` batches."""
        batches = [self._batch() for _ in range(n + timed)]
        self._turn += 1  # rotate the order: no recipe always runs after the same one
        for j in range(len(self.recipes)):
            k = (j + self._turn) % len(self.recipes)
            recipe, stepper = self.recipes[k], self.steppers[k]
            with recipe.activated():
                for i, (x, y) in enumerate(batches):
                    synchronize(self.device)
                    t0 = time.perf_counter()
                    float(stepper(x, y).loss)  # the loop reads the loss every step, so do we
                    synchronize(self.device)
                    if timed and i > 0:
                        self.times[k].append((time.perf_counter() - t0) * 1e3)

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.source.batch("train", self.cfg.batch_size, self.cfg.seq_len, self.gen)
        return x.to(self.device), y.to(self.device)


def median_ms(times: Sequence[float]) -> float:
    return float(statistics.median(times))
