"""The configuration key: one typed answer to "which runs are the same configuration?".

Every record carries a `ConfigKey` (written when the record is made; derived by the upgrader
for schema-1 records). Three levels, used by every view (summary, report, claims, gate,
history, exports):

- a **run** is a configuration plus its seed and repeat (`RunRecord.seed`, `RunRecord.repeat`:
  the replication unit, never part of the key); its id is written from both
  (`ConfigKey.run_id`) and never parsed back;
- a **configuration** (`ConfigKey`): model label, recipe id (recipe name plus the options
  tag), batch, sequence length, every matrix setting, the parallel strategy
  and communication dtype, and the device profile; runs with equal keys are pooled;
- a **comparison group** (`ComparisonKey`, `ConfigKey.comparison`): the configuration without
  its recipe id; the recipes within one group are compared (speedup over fp32).

analysis/compare.Groups groups runs by these keys for every view.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import Field

from mpbench.config import Strict
from mpbench.config.loader import IN_RUN_ID
from mpbench.config.parallel import parallel_tag

FLAGS = {"activation_checkpointing": "ckpt", "compile": "compiled"}
"""Boolean settings that are part of every key when on (matrix or not), shown by these words."""


class ParallelKey(Strict):
    """How a data-parallel run was trained (None on the key: one process)."""

    strategy: str
    """ddp or fsdp2."""
    grad_comm_dtype: str
    param_dtype: str | None = None
    world_size: int | None = None

    @property
    def tag(self) -> str:
        """The run-id part, as config/parallel.ParallelRun.tag writes it."""
        return parallel_tag(self.strategy, self.grad_comm_dtype, self.param_dtype,
                            self.world_size)


class ComparisonKey(Strict):
    """A configuration without its recipe id: the runs whose recipes are compared."""

    model: str
    """The suite's model label (without matrix tags)."""
    batch_size: int
    seq_len: int
    settings: dict[str, Any] = Field(default_factory=dict)
    """Every matrix setting other than batch and sequence length (name -> value), plus
    activation_checkpointing / compile when on."""
    parallel: ParallelKey | None = None
    profile: str
    """The suite's device profile (cpu, cuda)."""

    def __hash__(self) -> int:  # settings is a dict: hash the canonical id
        return hash(self.id)

    def _parts(self, profile: bool) -> list[str]:
        parts = [self.model, f"b{self.batch_size}-t{self.seq_len}"]
        parts += [f"{k}={_value(v)}" for k, v in sorted(self.settings.items())]
        if self.parallel is not None:
            parts.append(self.parallel.tag)
        if profile:
            parts.append(f"@{self.profile}")
        return parts

    @property
    def id(self) -> str:
        """Canonical text of every field (what groups and matches runs)."""
        return " ".join(self._parts(True))

    @property
    def label(self) -> str:
        """For people: 'gpt-tiny b8×t64 lr=0.01 ckpt ddp-bf16comm-w2' (profile left out)."""
        words = [f"{k}={_value(v)}" for k, v in sorted(self.settings.items()) if k not in FLAGS]
        words += [FLAGS[k] for k in FLAGS if self.settings.get(k)]
        par = [self.parallel.tag] if self.parallel is not None else []
        return " ".join([f"{self.model} b{self.batch_size}×t{self.seq_len}", *words, *par])

    @property
    def setting_label(self) -> str:
        """The label without the model: 'b8×t64 lr=0.01 ckpt'."""
        return self.label.removeprefix(self.model + " ")

    def with_recipe_id(self, recipe_id: str) -> ConfigKey:
        return ConfigKey(recipe_id=recipe_id, **dict(self))


class ConfigKey(ComparisonKey):
    """One configuration: the runs (seeds, repeats) that are replicates of each other."""

    recipe_id: str
    """The recipe name plus its options tag, what tells two configurations of one recipe apart
    (fp16, fp16-1a2b3c when the suite set options; the record's `precision` is the name alone)."""

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def comparison(self) -> ComparisonKey:
        return ComparisonKey(**{k: v for k, v in dict(self).items() if k != "recipe_id"})

    def _parts(self, profile: bool) -> list[str]:
        parts = super()._parts(profile)
        return [parts[0], self.recipe_id, *parts[1:]]

    @property
    def label(self) -> str:
        return f"{super().label} {self.recipe_id}"

    def run_id(self, seed: int, repeat: int = 0) -> str:
        """The id of one run of this configuration, written from the key and never parsed
        back (results/upgrade.py derives the key of a schema-1 record once):
        `<model>[-<setting><value>]__<recipe id>__b<B>-t<T>[-ckpt][-compiled]
        [__<parallel tag>]__seed<S>[-r<R>]`."""
        tags = "".join(f"-{k}{v}" for k, v in self.settings.items() if k not in FLAGS)
        flags = "".join(f"-{word}" for k, word in FLAGS.items() if self.settings.get(k))
        par = f"__{self.parallel.tag}" if self.parallel is not None else ""
        rep = f"-r{repeat}" if repeat else ""
        return (f"{self.model}{tags}__{self.recipe_id}__b{self.batch_size}-t{self.seq_len}"
                f"{flags}{par}__seed{seed}{rep}")


def _value(v: Any) -> str:
    return json.dumps(v) if not isinstance(v, str) else v


def options_tag(options: dict[str, Any]) -> str:
    """'-1a2b3c' for a recipe with options (a digest of them), '' without."""
    if not options:
        return ""
    digest = hashlib.sha1(json.dumps(options, sort_keys=True).encode()).hexdigest()[:6]
    return f"-{digest}"


def key_settings(train: dict[str, Any], matrix: list[str]) -> dict[str, Any]:
    """The settings part of a key: matrix settings not spelled out otherwise, and the flags."""
    out = {k: train.get(k) for k in matrix if k not in IN_RUN_ID}
    out.update({k: True for k in FLAGS if train.get(k)})
    return out


def make_key(model: str, precision: str, options: dict[str, Any], train: dict[str, Any],
             matrix: list[str], parallel: ParallelKey | None, profile: str) -> ConfigKey:
    return ConfigKey(model=model, recipe_id=precision + options_tag(options),
                     batch_size=int(train["batch_size"]), seq_len=int(train["seq_len"]),
                     settings=key_settings(train, matrix), parallel=parallel, profile=profile)


