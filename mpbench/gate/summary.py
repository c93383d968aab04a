"""The gates' verdicts as Markdown (CI step summaries, PR comments) and as JSON: the regression
gate's (GateReport) and the numerics fingerprint gate's (FingerprintComparison)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mpbench.analysis.fingerprint_compare import (
    LEVELS,
    Departure,
    FingerprintComparison,
    place_text,
    value_text,
)
from mpbench.gate.evaluate import GateReport
from mpbench.results.output import write_output

ICONS = {"regression": "❌ regression", "inconclusive": "⚠️ inconclusive",
         "improved": "✅ improved", "ok": "✅ ok"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(report: GateReport) -> str:
    lim = report.limits
    loss = (f"{lim.loss_tolerance:.1%} of the baseline" if lim.loss_relative
            else f"{lim.loss_tolerance:g} nats")
    lines = [
        "## mpbench gate",
        "",
        f"**{report.headline()}**",
        "",
        f"Current `{report.current}` vs baseline `{report.baseline}`. Limits: step time "
        f"+{lim.max_slowdown:.1%} (and significant over runs at alpha={lim.alpha:g}"
        + (", normalized by the drift probe" if lim.normalize_by_probe else "") + "), peak memory "
        f"+{lim.max_memory_growth:.1%}, eval loss +{loss}"
        + ("; strict: inconclusive fails." if report.strict else "."),
        "",
        "| run | metric | baseline | current | change | verdict |",
        "|---|---|---|---|---|---|",
    ]
    order = {"regression": 0, "inconclusive": 1, "improved": 2, "ok": 3}
    for f in sorted(report.findings, key=lambda f: order[f.verdict]):
        lines.append(f"| {_cell(f.config)} | {f.metric} | {_cell(f.baseline)} | "
                     f"{_cell(f.current)} | {_cell(f.change)} | {ICONS[f.verdict]}: "
                     f"{_cell(f.detail)} |")
    if report.only_current:
        lines += ["", f"New runs without a baseline: {', '.join(report.only_current)}"]
    if report.only_baseline:
        lines += ["", f"Baseline runs missing from current: {', '.join(report.only_baseline)}"]
    if report.notes:
        lines += ["", *[f"- {n}" for n in report.notes]]
    return "\n".join(lines) + "\n"


def write_outputs(report: GateReport, summary_md: Path | None, json_path: Path | None) -> list[Path]:
    """Write the requested files; append the Markdown to $GITHUB_STEP_SUMMARY when it is set."""
    written = write_markdown(to_markdown(report), summary_md)
    if json_path is not None:
        written.append(write_output(json_path, json.dumps(report.as_dict(), indent=1, default=str),
                                    "--json"))
    return written


def write_markdown(markdown: str, summary_md: Path | None) -> list[Path]:
    """Write a gate's Markdown to --summary-md and append it to $GITHUB_STEP_SUMMARY (when
    set): the one writer of CI summaries (the fingerprint gate uses it too)."""
    written = []
    if summary_md is not None:
        written.append(write_output(summary_md, markdown, "--summary-md"))
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:  # appended: the step summary may hold earlier steps' sections
        path = Path(step_summary)
        try:
            before = path.read_text(encoding="utf-8") if path.is_file() else ""
        except (OSError, UnicodeDecodeError):
            before = ""
        written.append(write_output(path, before + markdown, "GITHUB_STEP_SUMMARY"))
    return written


FINGERPRINT_ICONS = {"identical": "✅ identical", "within-repeat-tolerance": "✅ within repeat tolerance",
         "inside-seed-band": "⚠️ changed, inside the FP32 seed band",
         "beyond-seed-band": "❌ changed beyond the FP32 seed band"}


def fingerprint_markdown(c: FingerprintComparison) -> str:
    """The fingerprint gate's verdict (`mpbench gate fingerprint`) as Markdown."""
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
        lines.append(f"| {r.model} | {r.recipe} | {FINGERPRINT_ICONS[r.level]} | "
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


def _departure_dict(d: Departure | None) -> dict[str, Any] | None:
    if d is None:
        return None
    return {"step": d.step, "layer": d.layer, "tensor": d.tensor, "stat": d.stat,
            "baseline": value_text(d.baseline), "current": value_text(d.current),
            "difference": value_text(d.difference), "tolerance": d.tolerance, "band": d.band}


def fingerprint_dict(c: FingerprintComparison) -> dict[str, Any]:
    """The fingerprint gate's verdict as JSON-able data."""
    return {
        "baseline": c.baseline, "current": c.current, "level": c.level,
        "exit_code": c.exit_code, "headline": c.headline(),
        "repeat_tolerance": c.tolerance.by_kind, "repeat_pairs": c.tolerance.pairs,
        "band_seeds": c.band_seeds,
        "software": [{"name": k, "baseline": b, "current": v} for k, b, v in c.software],
        "recipes": [{"model": r.model, "recipe": r.recipe, "level": r.level,
                     "first_change": _departure_dict(r.first_change),
                     "first_beyond": _departure_dict(r.first_beyond), "changed": r.changed,
                     "compared": r.compared, "band_use": value_text(r.band_use),
                     "reason": r.reason,
                     "option_changes": [list(o) for o in r.option_changes]}
                    for r in c.recipes],
        "only_baseline": c.only_baseline, "only_current": c.only_current,
    }
