"""Plots as inline SVG strings (matplotlib's SVG backend, no pyplot, no files, no network).

Text stays text (svg.fonttype 'none'), which matplotlib escapes; `inline_svg` strips the
XML prologue and metadata, makes ids unique per plot and refuses anything scriptable.
"""

from __future__ import annotations

import functools
import io
import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec, cast

import matplotlib
from markupsafe import Markup, escape
from matplotlib.figure import Figure

from mpbench.analysis.convergence import Band

PALETTE = {"fp32": "#4c566a", "tf32": "#8f9bb3", "fp16": "#d08770", "fp16-noscale": "#bf616a",
           "bf16": "#5e81ac", "bf16-pure": "#88c0d0"}
EXTRA = ["#a3be8c", "#b48ead", "#ebcb8b", "#6f8f72", "#7b6f9e", "#c2a25b"]
_ids = itertools.count(1)
P = ParamSpec("P")
_UNSAFE = re.compile(r"<\s*(script|foreignObject|iframe|image)\b|\bon[a-z]+\s*=|javascript:", re.I)
STYLE: dict[str, Any] = {"font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
         "axes.titlesize": 10, "axes.titleweight": "bold", "legend.fontsize": 8,
         "legend.frameon": False, "svg.fonttype": "none", "svg.hashsalt": "mpbench"}


def color(name: str) -> str:
    if name in PALETTE:
        return PALETTE[name]
    if name.startswith("fp8"):
        return "#a3be8c" if "emul" not in name else "#c9d8b6"
    return EXTRA[sum(map(ord, name)) % len(EXTRA)]


def styled(fn: Callable[P, Markup]) -> Callable[P, Markup]:
    """rcParams are read while artists are made, so the whole plot runs inside the style."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Markup:
        with matplotlib.rc_context(cast(Any, STYLE)):  # stubs want literal keys
            return fn(*args, **kwargs)

    return wrapper


CHAR_IN = 0.068
"""Approximate width of one 9-pt label character, in inches (for margins without a layout pass)."""


def figure(width: float = 7.0, height: float = 3.0) -> Figure:
    # No layout engine: constrained layout draws the figure twice, and plots are most of
    # the report's rendering time; margins are set from the label lengths instead.
    return Figure(figsize=(width, height))


def margins(fig: Figure, left: float, right: float, top: float = 0.32, bottom: float = 0.5
            ) -> None:
    """Margins in inches, kept to at most 60% of the figure."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=min(left / w, 0.45), right=max(1 - right / w, 0.6),
                        top=1 - top / h, bottom=min(bottom / h, 0.4))


def text_width(labels: Sequence[str]) -> float:
    return CHAR_IN * max((len(x) for x in labels), default=0)


def inline_svg(fig: Figure, label: str) -> Markup:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    svg = re.sub(r'\s(xmlns(:xlink)?|version)="[^"]*"', "", svg)
    svg = re.sub(r'<svg\s+width="[^"]*"\s+height="[^"]*"',
                 f'<svg class="plot" role="img" aria-label="{escape(label)}"', svg, count=1)
    prefix = f"p{next(_ids)}-"
    svg = svg.replace(' id="', f' id="{prefix}').replace("url(#", f"url(#{prefix}")
    svg = svg.replace('href="#', f'href="#{prefix}')
    svg = re.sub(r">\s+<", "><", svg)
    if _UNSAFE.search(svg):
        raise ValueError("refusing to inline an SVG with scriptable content")
    return Markup(svg)


@styled
def bars_with_ci(labels: Sequence[str], values: Sequence[float],
                 lows: Sequence[float | None], highs: Sequence[float | None],
                 colors: Sequence[str], xlabel: str, title: str) -> Markup:
    """Horizontal bars (one per label) with interval whiskers where an interval exists."""
    n = len(labels)
    fig = figure(7.0, max(1.6, 0.28 * n + 0.9))
    ax = fig.add_subplot()
    ys = list(range(n))[::-1]
    ax.barh(ys, values, color=colors, height=0.7)
    for y, v, lo, hi in zip(ys, values, lows, highs, strict=True):
        if lo is not None and hi is not None:
            ax.errorbar([v], [y], xerr=[[max(v - lo, 0)], [max(hi - v, 0)]], fmt="none",
                        ecolor="#2e3440", capsize=2.5, lw=1)
    ax.set_yticks(ys, labels)
    ax.set_xlabel(xlabel)
    ax.set_title(title, loc="left")
    ax.grid(axis="x", alpha=0.3)
    margins(fig, 0.25 + text_width(labels), 0.3)
    return inline_svg(fig, title)


@styled
def stacked_bars(labels: Sequence[str], parts: dict[str, Sequence[float]],
                 peaks: Sequence[float | None], xlabel: str, title: str) -> Markup:
    """Memory breakdown: one stacked bar per label, a tick for the measured peak."""
    n = len(labels)
    fig = figure(7.0, max(1.8, 0.32 * n + 1.2))
    ax = fig.add_subplot()
    ys = list(range(n))[::-1]
    left = [0.0] * n
    shades = ["#5e81ac", "#81a1c1", "#d08770", "#ebcb8b", "#a3be8c", "#b8bfcc"]
    for (name, vals), shade in zip(parts.items(), shades, strict=False):
        ax.barh(ys, vals, left=left, color=shade, height=0.65, label=name)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    px = [(p, y) for p, y in zip(peaks, ys, strict=True) if p is not None]
    if px:
        ax.scatter([p for p, _ in px], [y for _, y in px], marker="|", s=260, color="#2e3440",
                   label="measured peak", zorder=3)
    ax.set_yticks(ys, labels)
    ax.set_xlabel(xlabel)
    ax.set_title(title, loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(axis="x", alpha=0.3)
    margins(fig, 0.25 + text_width(labels), 0.5 + text_width([*parts, "measured peak"]))
    return inline_svg(fig, title)


Curve = Sequence[tuple[int, float]]


@styled
def loss_curves(band: Band | None, baseline: str, lines: Mapping[str, Curve],
                floor: float | None, title: str, band_label: str) -> Markup:
    """The baseline's seed band as the convergence analysis judges it (mean line, low to high)
    and one mean curve per other precision."""
    fig = figure(7.0, 3.1)
    ax = fig.add_subplot()
    if band:
        ax.fill_between(band.steps, band.low, band.high, color=color(baseline), alpha=0.18,
                        lw=0, label=band_label)
        ax.plot(band.steps, band.mean, color=color(baseline), lw=1.4, label=baseline)
    for name, curve in lines.items():
        if curve:
            ax.plot([s for s, _ in curve], [v for _, v in curve], lw=1.1, color=color(name),
                    label=name)
    if floor is not None:
        ax.axhline(floor, color="#999999", lw=0.8, ls="--", label="entropy floor")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(title, loc="left")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    margins(fig, 0.7, 0.5 + text_width([band_label, *lines, "entropy floor"]))
    return inline_svg(fig, title)


@styled
def step_lines(series: Mapping[str, Curve], ylabel: str, title: str, log: bool = False) -> Markup:
    fig = figure(7.0, 2.6)
    ax = fig.add_subplot()
    for name, curve in series.items():
        ax.step([s for s, _ in curve], [v for _, v in curve], where="post", lw=1.2,
                color=color(name.split(" ")[0]), label=name)
    if log:
        ax.set_yscale("log", base=2)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title, loc="left")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    margins(fig, 0.7, 0.5 + text_width(list(series)))
    return inline_svg(fig, title)
