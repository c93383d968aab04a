"""The runs of a numerics fingerprint: what `mpbench fingerprint run SUITE` trains.

From a suite it takes the models, recipes and data, and replaces the training by a short
fixed-seed run with the "fingerprint" profiler attached:
- every recipe at the suite's first seed, `repeats` times (repeat r > 0 measures how far the
  same code on the same machine differs from itself: the repeat tolerance);
- FP32 at `band_seeds` seeds (the first one shared with the above): how far FP32 moves when
  only the seed changes, the band against which a change counts as one that matters (1: no
  band; such a set can be compared against a baseline, not serve as one).
"""

from __future__ import annotations

from dataclasses import dataclass

from mpbench.config.schema import PrecisionSpec, Suite
from mpbench.errors import UserError
from mpbench.plan.spec import RunSpec, expand
from mpbench.precision import RECIPES


def band_recipe() -> str:
    """The recipe the seed band is measured with: the comparisons' baseline (Recipe.role),
    strict FP32."""
    return next(name for name, cls in RECIPES.items() if cls.role == "baseline")


@dataclass(frozen=True)
class FingerprintPlan:
    steps: int = 8
    """Training steps (no warm-up, no eval): loss and grad norm at each."""
    probe_steps: tuple[int, ...] = (0, 1, 2, 4, 7)
    repeats: int = 2
    band_seeds: int = 3
    threads: int | None = 1
    """torch CPU threads: 1 by default, so that a fingerprint does not depend on the core count
    (a reduction split over threads sums in another order) and tiny models do not wait on
    thread barriers on a busy machine; None keeps the suite's setting."""


def fingerprint_suite(suite: Suite, plan: FingerprintPlan, where: str) -> Suite:
    """The suite's fingerprint form: short, fixed seed, the profiler attached."""
    if suite.parallel is not None:
        raise UserError(f"{where}: parallel: fingerprints are single-process runs; use a suite "
                        "without a parallel section")
    if plan.steps < 1 or plan.repeats < 1 or plan.band_seeds < 1:
        raise UserError("--steps, --repeats and --band-seeds must be >= 1")
    probes = sorted({s for s in plan.probe_steps if 0 <= s < plan.steps})
    if not probes:
        raise UserError(f"--probe-steps {','.join(map(str, plan.probe_steps))}: none is below "
                        f"--steps {plan.steps}; give steps between 0 and {plan.steps - 1}")
    seed = suite.seeds[0]
    train = suite.train.model_copy(update={
        "steps": plan.steps, "warmup_steps": 0, "eval_batches": 0, "eval_every": 0,
        "threads": plan.threads or suite.train.threads})
    profiler = PrecisionSpec(name="fingerprint",
                             options={"probe_steps": probes, "reference_seed": seed})
    return suite.model_copy(update={
        "name": f"{suite.name}-fingerprint", "train": train, "profilers": [profiler],
        "seeds": [seed], "repeats": plan.repeats, "matrix": {}, "budget": None, "claims": [],
    })


def fingerprint_runs(suite: Suite, plan: FingerprintPlan) -> list[RunSpec]:
    """Every recipe x `repeats` at the first seed, then FP32 at the other band seeds."""
    base = suite.seeds[0]
    extra = [base + i for i in range(1, plan.band_seeds)]
    baseline = band_recipe()
    has_fp32 = any(p.name == baseline and not p.options for p in suite.precisions)
    seeds = extra if has_fp32 else [base, *extra]
    if not seeds:
        return expand(suite)
    band = suite.model_copy(update={"precisions": [PrecisionSpec(name=baseline)],
                                    "seeds": seeds, "repeats": 1})
    return expand(suite) + expand(band)
