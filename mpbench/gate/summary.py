"""The gate's verdict as Markdown (CI step summaries, PR comments) and as JSON."""

from __future__ import annotations

import json
import os
from pathlib import Path

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
