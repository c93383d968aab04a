"""What a report section is made of: tables, plots and notes, ready for the template.

Sections are built in Python so the templates stay plain loops; every string here is user
or record data and is escaped by the template (autoescape), except `Plot.svg`, which
plots.inline_svg produced and checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from markupsafe import Markup


@dataclass
class Cell:
    text: str
    sort: float | str | None = None
    """Sort key for the sortable tables (numbers sort as numbers)."""
    cls: str = ""
    title: str = ""
    sub: str = ""
    """A second, smaller line under the text."""
    links: tuple[tuple[str, str], ...] = ()
    """(text, href) pairs shown instead of `text`, comma-separated (source ids)."""
    anchor: str = ""
    """An HTML id on the cell, for links to it."""


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Cell]]
    caption: str = ""
    numeric: set[int] = field(default_factory=set)
    """Columns aligned right and sorted as numbers."""
    sortable: bool = True
    kind: Literal["table"] = "table"


@dataclass
class Plot:
    svg: Markup
    caption: str = ""
    kind: Literal["plot"] = "plot"


@dataclass
class Note:
    text: str
    tone: Literal["info", "missing", "warn"] = "info"
    kind: Literal["note"] = "note"


Block = Table | Plot | Note


@dataclass
class SetBlocks:
    """One results directory's part of a section."""

    label: str
    blocks: list[Block]


@dataclass
class Section:
    id: str
    title: str
    intro: str
    parts: list[SetBlocks]


def missing(what: str, add: str) -> Note:
    """The standard 'not measured' note: what is missing and what the suite must add."""
    return Note(f"Not measured: {what}. To measure it, {add}.", "missing")


def num(x: float | None, digits: int = 2, unit: str = "") -> Cell:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return Cell("-", None)
    if abs(x) >= 100:
        text = f"{x:,.0f}"
    elif abs(x) >= 0.01 or x == 0:
        text = f"{x:.{digits}f}"
    else:
        text = f"{x:.2g}"
    return Cell(f"{text}{unit}", float(x))


def pct(x: float | None, digits: int = 1) -> Cell:
    if x is None:
        return Cell("-", None)
    return Cell(f"{100 * x:.{digits}f}%", float(x))


def nbytes(n: float | None) -> Cell:
    if n is None:
        return Cell("-", None)
    v = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(v) < 1024 or unit == "TiB":
            return Cell(f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}", float(n))
        v /= 1024
    return Cell(f"{v:.1f} TiB", float(n))


def ratio(value: float | None, low: float | None, high: float | None, unit: str = "×") -> Cell:
    if value is None:
        return Cell("-", None)
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return Cell(f"{value:.2f}{unit}", value, title="no interval (too few samples)")
    return Cell(f"{value:.2f}{unit} [{low:.2f}, {high:.2f}]", value,
                title="median ratio with its 95% bootstrap interval")


def text(s: object, cls: str = "") -> Cell:
    t = "-" if s is None else str(s)
    return Cell(t, t, cls)
