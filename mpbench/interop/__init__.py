"""Formats and tools other than mpbench's own: pytest-benchmark JSON, MLflow, TensorBoard.

Importing this package registers every exporter (mlflow and tensorboard are imported only
when one is used).
"""

from mpbench.interop import (  # noqa: F401
    mlflow_tracking,
    pytest_benchmark,
    tensorboard_events,
)
from mpbench.interop.base import EXPORTERS, Exporter, ExportRequest, register

__all__ = ["EXPORTERS", "ExportRequest", "Exporter", "register"]
