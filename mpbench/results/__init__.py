"""Results: the record schema, the environment card, the store and the pandas loader.

The pandas loader imports pandas on first use (pandas costs start-up time most commands never
need).
"""

from mpbench.results.schema import SCHEMA_VERSION, RunRecord
from mpbench.results.store import ResultsDir, load_records, load_results, records_frame

__all__ = ["SCHEMA_VERSION", "ResultsDir", "RunRecord", "load_records", "load_results", "records_frame"]
