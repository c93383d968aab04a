"""Expand a suite into runs: model x precision x seed, interleaved, with stable ids."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from mpbench.config.loader import train_variants
from mpbench.config.model_sizes import ModelConfig
from mpbench.config.parallel import ParallelRun
from mpbench.config.schema import ModelSpec, PrecisionSpec, Suite, TrainConfig
from mpbench.models.entry import ModelFacts, model_facts, resolve_model_config
from mpbench.results.key import ConfigKey, ParallelKey, make_key


@dataclass(frozen=True)
class RunSpec:
    suite: Suite
    model_label: str
    model: ModelSpec
    precision: PrecisionSpec
    seed: int
    repeat: int
    """Which repeat of this configuration and seed (suite `repeats:`, run --repeats)."""
    parallel: ParallelRun | None = None
    """The data-parallel combination of this run (None: one process)."""
    train_config: TrainConfig | None = None
    """This run's train settings when the suite has a matrix (None: suite.train)."""

    @property
    def train(self) -> TrainConfig:
        return self.train_config or self.suite.train

    @cached_property
    def config_key(self) -> ConfigKey:
        """The configuration this run replicates (written into its record): its identity."""
        par = self.parallel
        pkey = (ParallelKey(strategy=par.strategy, grad_comm_dtype=par.grad_comm_dtype,
                            param_dtype=par.param_dtype, world_size=par.world_size)
                if par is not None else None)
        return make_key(self.model_label, self.precision.name, self.precision.options,
                        self.train.model_dump(), list(self.suite.matrix), pkey, self.suite.profile)

    @cached_property
    def run_id(self) -> str:
        """Derived from the key (ConfigKey.run_id), with the seed and repeat."""
        return self.config_key.run_id(self.seed, self.repeat)

    def model_config(self, data_vocab: int) -> ModelConfig | None:
        """The reference model's dimensions; None for Hugging Face and user models."""
        if self.model.kind != "reference":
            return None
        return resolve_model_config(self.model, self.train.seq_len, data_vocab)

    def model_facts(self, data_vocab: int) -> ModelFacts:
        return model_facts(self.model, self.train.seq_len, data_vocab)


def expand(suite: Suite) -> list[RunSpec]:
    """Repeats outermost, then seeds; precisions innermost, so recipes interleave (A B C A B C)."""
    runs: list[RunSpec] = []
    labels = [m.label for m in suite.models]
    dupes = {label for label in labels if labels.count(label) > 1}
    variants = train_variants(suite)
    for repeat, seed in ((r, s) for r in range(suite.repeats) for s in suite.seeds):
        for i, model in enumerate(suite.models):
            label = f"{model.label}-{i}" if model.label in dupes else model.label
            for train in variants:
                for precision in suite.precisions:
                    for par in suite.parallel.runs() if suite.parallel else [None]:
                        runs.append(RunSpec(suite, label, model, precision, seed, repeat, par,
                                            train if suite.matrix else None))
    seen: set[str] = set()
    unique = []
    for run in runs:  # the same precision listed twice with equal options runs once
        if run.run_id not in seen:
            seen.add(run.run_id)
            unique.append(run)
    return unique
