"""Suite schema: data only; imports nothing above errors.py and dtypes.py."""

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """mpbench's typed data (suites, micro-benchmark configs, stored profiler results): an
    unknown or misspelled field is an error, never a silent default, and nothing changes it
    after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True)
