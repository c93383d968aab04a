"""The report's fingerprint section: each later result set's numerics fingerprint against the
first set's (the gate's comparison, analysis/fingerprint_compare.py), per recipe a verdict
row, a plot of where the numbers moved (per layer and probe step, baseline against current),
and the table of software that differs between the two."""

from __future__ import annotations

import math

import numpy as np
from markupsafe import Markup
from matplotlib.patches import Rectangle

from mpbench.analysis.fingerprint import difference
from mpbench.analysis.fingerprint_compare import (
    FingerprintComparison,
    RecipeComparison,
    compare_sets,
    place_text,
)
from mpbench.errors import UserError
from mpbench.report.blocks import Block, Cell, Note, Plot, Section, SetBlocks, Table, text
from mpbench.report.plots import figure, inline_svg, margins, styled, text_width
from mpbench.report.resultset import ResultSet

VERDICTS = {"identical": "identical", "within-repeat-tolerance": "within repeat tolerance",
            "inside-seed-band": "changed, inside the FP32 seed band",
            "beyond-seed-band": "changed beyond the FP32 seed band"}
CLASSES = {"identical": "v v-holds", "within-repeat-tolerance": "v v-holds",
           "inside-seed-band": "v v-inconclusive", "beyond-seed-band": "v v-fails"}
"""The report's verdict styles (style.css)."""
FLOOR = 1e-9
"""Relative differences below this are drawn as this (the colour scale's floor)."""


def has_fingerprints(s: ResultSet) -> bool:
    return any("fingerprint" in r.profiler_results for r in s.records)


def _layers(r: RecipeComparison) -> list[str]:
    """Layers in forward order (the order their activations appeared at the first probe)."""
    assert r.baseline is not None
    order = r.baseline.order()
    keys = [k for k in order if k[2] in ("activation", "gradient") and k[3] == "amax"]
    keys.sort(key=lambda k: (k[2] != "activation", order[k]))
    return list(dict.fromkeys(k[1] for k in keys))


def _grid(r: RecipeComparison, tensor: str, layers: list[str]) -> tuple[list[int], np.ndarray]:
    """log10 of |relative amax difference| per (layer, probe step); NaN where identical;
    +inf where not finite on one side."""
    assert r.baseline is not None and r.current is not None
    base, cur = r.baseline.values(), r.current.values()
    keys = [k for k in base if k[2] == tensor and k[3] == "amax"]
    steps = sorted({k[0] for k in keys})
    grid = np.full((len(layers), len(steps)), np.nan)
    for k in keys:
        d = difference("amax", base[k], cur.get(k, math.nan))
        if d > 0:
            grid[layers.index(k[1]), steps.index(k[0])] = (
                math.log10(max(d, FLOOR)) if math.isfinite(d) else np.inf)
    return steps, grid


@styled
def difference_map(r: RecipeComparison, title: str) -> Markup:
    """Two heat maps (activation and gradient amax): layer by probe step, the colour the
    relative difference current vs baseline; the first change is boxed."""
    layers = _layers(r)
    panels = [_grid(r, "activation", layers), _grid(r, "gradient", layers)]
    fig = figure(7.0, 0.9 + 0.16 * max(len(layers), 4))
    finite = [g[np.isfinite(g)] for _, g in panels]
    values = np.concatenate(finite) if any(v.size for v in finite) else np.array([-9.0, 0.0])
    lo, hi = float(values.min()), max(float(values.max()), float(values.min()) + 1.0)
    image = None
    names = layers
    for i, ((steps, grid), tensor) in enumerate(zip(panels, ("activation", "gradient"),
                                                    strict=True)):
        ax = fig.add_subplot(1, 2, i + 1)
        shown = np.where(np.isinf(grid), hi, grid)
        # vector cells (pcolormesh), not imshow: an inlined plot may hold no raster <image>
        image = ax.pcolormesh(np.arange(len(steps) + 1) - 0.5, np.arange(len(names) + 1) - 0.5,
                              np.ma.masked_invalid(shown), cmap="magma_r", vmin=lo, vmax=hi,
                              edgecolors="#eeeeee", linewidth=0.3)
        ax.invert_yaxis()
        ax.set_xticks(range(len(steps)), [str(s) for s in steps])
        ax.set_yticks(range(len(names)), names if i == 0 else [""] * len(names))
        ax.set_xlabel("step")
        ax.set_title(f"{tensor} amax", loc="left")
        first = r.first_change
        if first is not None and first.tensor == tensor and first.layer in names \
                and first.step in steps:
            ax.add_patch(_box(steps.index(first.step), names.index(first.layer)))
    if image is not None:
        bar = fig.colorbar(image, ax=fig.axes, fraction=0.04, pad=0.02)
        bar.set_label("log10 |relative difference|")
        if bar.solids is not None:  # matplotlib rasterizes long colour bars: keep it vector
            bar.solids.set_rasterized(False)
    fig.suptitle(title, x=0.01, ha="left", fontsize=10, fontweight="bold")
    margins(fig, 0.3 + text_width(layers), 1.1, top=0.5)
    return inline_svg(fig, title)


def _box(x: int, y: int) -> Rectangle:
    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, ec="#2e7d32", lw=2.0)


def comparison_blocks(c: FingerprintComparison, current: str) -> list[Block]:
    rows = [[text(r.model), text(r.recipe),
             Cell(VERDICTS[r.level], r.level, CLASSES[r.level]),
             text(place_text(r.first_change)), text(place_text(r.first_beyond)),
             text(r.detail())] for r in c.recipes]
    blocks: list[Block] = [Table(
        ["model", "recipe", "verdict", "first change (left the repeat tolerance)",
         "first beyond the FP32 seed band", "detail"], rows,
        caption=f"{current} against {c.baseline}: {c.headline()}. Repeat tolerance from "
                f"{c.tolerance.pairs} same-code pair(s); seed band from FP32 at seeds "
                f"{', '.join(map(str, c.band_seeds))}.")]
    for r in c.recipes:
        if r.level in ("inside-seed-band", "beyond-seed-band") and r.current is not None:
            blocks.append(Plot(difference_map(r, f"{r.model} {r.recipe}: where the numbers "
                                                 "moved"),
                               caption="Per layer (forward order) and probe step, the relative "
                               "difference of the amax between current and baseline; blank: "
                               "identical; boxed: the first change."))
    if c.software:
        blocks.append(Table(["software", "baseline", "current"],
                            [[text(k), text(b), text(v)] for k, b, v in c.software],
                            caption="Software and settings that differ between the records."))
    else:
        blocks.append(Note("Same software versions and settings on both sides."))
    return blocks


def fingerprint_section(sets: list[ResultSet]) -> Section | None:
    """Each later set's fingerprints against the first set's (None: fewer than two sets with
    fingerprints)."""
    if len(sets) < 2 or not has_fingerprints(sets[0]):
        return None
    first = sets[0]
    parts = []
    for other in sets[1:]:
        if not has_fingerprints(other):
            continue
        try:
            blocks = comparison_blocks(compare_sets(first.records, other.records, first.label,
                                                    other.label), other.label)
        except UserError as exc:  # the report still shows everything else
            blocks = [Note(f"Fingerprints not comparable: {exc}", "warn")]
        parts.append(SetBlocks(other.label, blocks))
    if not parts:
        return None
    return Section("fingerprint", "Numerics fingerprint",
                   f"Each result set's numerics fingerprint against {first.label}'s, as "
                   "`mpbench fingerprint gate` judges it: identical, within the repeat "
                   "tolerance, changed inside the FP32 seed band, or beyond it.", parts)
