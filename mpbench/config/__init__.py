"""Suite schema: data only; imports nothing above errors.py and dtypes.py."""

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """mpbench's typed data (suites, recipe and profiler options, run keys, micro-benchmark
    configs, stored profiler results, advice): an unknown or misspelled field is an error,
    never a silent default, and nothing changes it after validation. The one such base:
    every layer above config subclasses it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
