"""The fingerprint gate's verdict as Markdown (CI step summaries) and as JSON-able data."""

from __future__ import annotations

from typing import Any

from mpbench.analysis.fingerprint_compare import (
    LEVELS,
    Departure,
    FingerprintComparison,
    place_text,
    value_text,
)

ICONS = {"identical": "✅ identical", "within-repeat-tolerance": "✅ within repeat tolerance",
         "inside-seed-band": "⚠️ changed, inside the FP32 seed band",
         "beyond-seed-band": "❌ changed beyond the FP32 seed band"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(c: FingerprintComparison) -> str:
    tol = ", ".join(f"{k} {v:.3g}" for k, v in c.tolerance.by_kind.items())
    lines = [
        "## mpbench gate: numerics fingerprint", "", f"**{c.headline()}**", "",
        f"Current `{c.current}` vs baseline `{c.baseline}`. Repeat tolerance from "
        f"{c.tolerance.pairs} same-code repeat pair(s): {tol} (relative; shares absolute). "
        f"Seed band: FP32 at seeds {', '.join(map(str, c.band_seeds))}.", "",
        "| model | recipe | verdict | first change (left the repeat tolerance) | "
        "first beyond the band | detail |",
        "|---|---|---|---|---|---|",
    ]
    for r in sorted(c.recipes, key=lambda r: -LEVELS.index(r.level)):
        lines.append(f"| {r.model} | {r.recipe} | {ICONS[r.level]} | "
                     f"{_cell(place_text(r.first_change))} | {_cell(place_text(r.first_beyond))} "
                     f"| {_cell(r.detail())} |")
    lines += ["", "Software that differs between the two records:", ""]
    if c.software:
        lines += ["| software | baseline | current |", "|---|---|---|"]
        lines += [f"| {k} | {_cell(str(b))} | {_cell(str(v))} |" for k, b, v in c.software]
    else:
        lines.append("none (same versions and settings)")
    if c.only_baseline:
        lines += ["", f"Baseline fingerprints missing from current: {', '.join(c.only_baseline)}"]
    if c.only_current:
        lines += ["", f"New fingerprints without a baseline: {', '.join(c.only_current)}"]
    return "\n".join(lines) + "\n"


def departure_dict(d: Departure | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {"step": d.step, "layer": d.layer, "tensor": d.tensor, "stat": d.stat,
            "baseline": value_text(d.baseline), "current": value_text(d.current),
            "difference": value_text(d.difference), "tolerance": d.tolerance, "band": d.band}


def as_dict(c: FingerprintComparison) -> dict[str, Any]:
    return {
        "baseline": c.baseline, "current": c.current, "level": c.level,
        "exit_code": c.exit_code, "headline": c.headline(),
        "repeat_tolerance": c.tolerance.by_kind, "repeat_pairs": c.tolerance.pairs,
        "band_seeds": c.band_seeds,
        "software": [{"name": k, "baseline": b, "current": v} for k, b, v in c.software],
        "recipes": [{"model": r.model, "recipe": r.recipe, "level": r.level,
                     "first_change": departure_dict(r.first_change),
                     "first_beyond": departure_dict(r.first_beyond), "changed": r.changed,
                     "compared": r.compared, "band_use": value_text(r.band_use),
                     "reason": r.reason,
                     "option_changes": [list(o) for o in r.option_changes]}
                    for r in c.recipes],
        "only_baseline": c.only_baseline, "only_current": c.only_current,
    }
