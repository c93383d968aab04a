"""The exporter registry: `mpbench export --format NAME` finds its exporter here.

An exporter is one module under mpbench/interop/ with a class decorated by `@register`;
importing mpbench.interop registers the built-in ones. Client libraries (mlflow,
tensorboard) are imported inside `export`, never at module import, to keep start-up fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from mpbench.errors import UserError
from mpbench.registry import registrar
from mpbench.results.schema import RunRecord

OPTION_NAMES = {"output": "--out"}
"""ExportRequest fields whose command-line option has another name."""


@dataclass(frozen=True)
class ExportRequest:
    """What `mpbench export` was asked for; each exporter reads the options it uses."""

    results: Path
    records: list[RunRecord]
    output: Path | None = None
    tracking_uri: str | None = None
    experiment: str | None = None

    def refuse(self, fmt: str, **given: object) -> None:
        """A user error for each option given that this format does not use."""
        for option, value in given.items():
            if value is not None:
                name = OPTION_NAMES.get(option, "--" + option.replace("_", "-"))
                raise UserError(f"{name}: not used by --format {fmt}; leave it out")


class Exporter:
    name: ClassVar[str]
    summary: ClassVar[str]
    """One line for `mpbench export --help`."""

    def export(self, request: ExportRequest) -> str:
        """Write the records; return the line to print (what was written where)."""
        raise NotImplementedError


EXPORTERS: dict[str, type[Exporter]] = {}


register = registrar(EXPORTERS, "exporter")
"""Class decorator: add the exporter to EXPORTERS under its name."""
