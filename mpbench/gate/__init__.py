"""The CI regression gate: match runs with a baseline, apply noise-aware rules, decide.

matching.py (pair configurations) -> rules.py (one verdict per metric) -> evaluate.py (load
either side as interop RunSummary rows, the report and exit code) -> summary.py (Markdown, JSON).
"""

from mpbench.gate.evaluate import GateReport, compare_runs, run_gate
from mpbench.gate.rules import Finding, Limits

__all__ = ["Finding", "GateReport", "Limits", "compare_runs", "run_gate"]
