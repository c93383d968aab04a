"""Results: the record schema, the environment card, the store and the pandas loader.

The pandas loader is imported on first use (pandas costs start-up time most commands never need).
"""

from typing import Any

from mpbench.results.schema import SCHEMA_VERSION, RunRecord
from mpbench.results.store import ResultsDir, load_records


def __getattr__(name: str) -> Any:
    if name in ("load_results", "records_frame"):
        from mpbench.results import frame

        return getattr(frame, name)
    raise AttributeError(f"module 'mpbench.results' has no attribute {name!r}")


__all__ = ["SCHEMA_VERSION", "ResultsDir", "RunRecord", "load_records", "load_results", "records_frame"]
