"""Results: the record schema, the environment card, the store and the pandas loader."""

from mpbench.results.frame import load_results, records_frame
from mpbench.results.schema import SCHEMA_VERSION, RunRecord
from mpbench.results.store import ResultsDir, load_records

__all__ = ["SCHEMA_VERSION", "ResultsDir", "RunRecord", "load_records", "load_results", "records_frame"]
