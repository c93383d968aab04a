"""The short Markdown summary: the verdict table, for CI logs and pull requests."""

from __future__ import annotations

from mpbench.analysis.claims.registry import SOURCES
from mpbench.config.claim_ids import CLAIM_IDS
from mpbench.report.resultset import ResultSet

ICON = {"holds": "✅ holds", "fails": "❌ fails here", "inconclusive": "⚠️ inconclusive",
        "not applicable": "➖ not applicable", "not measured": "◻️ not measured"}


def cell(s: str) -> str:
    """Table-safe text: no pipes or newlines, and no raw HTML in a Markdown renderer."""
    return (s.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
            .replace("<", "&lt;").replace(">", "&gt;"))


def render_markdown(sets: list[ResultSet]) -> str:
    lines = ["## mpbench claims", ""]
    for s in sets:
        r = s.first
        where = f"{r.device_name} ({r.device})" if r else "no runs"
        ok = sum(x.status == "ok" for x in s.records)
        lines.append(f"- **{cell(s.label)}**: suite `{cell(s.suite)}` on {cell(where)}, "
                     f"{ok} of {len(s.records)} runs ok")
    lines.append("")
    head = ["claim", *(cell(s.label) for s in sets), "bound (source)"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cid in CLAIM_IDS:
        verdicts = [next(v for v in s.verdicts if v.claim_id == cid) for s in sets]
        cells = []
        for v in verdicts:
            measured = f": {v.measured}" if v.measured != "-" else ""
            cells.append(cell(f"{ICON[v.verdict]}{measured}"))
        b = verdicts[0].bound
        quote = "" if b.kind == "condition" else f"\u201c{cell(b.figure)}\u201d, "
        lines.append(f"| `{cid}` | " + " | ".join(cells) +
                     f" | {cell(b.short)} ({quote}{b.source_text}) |")
    lines.append("")
    lines += ["Sources: " + "; ".join(
        f"{src.id} {cell(src.title)} ({src.url or cell(src.publisher or 'address not established')})"
        for src in SOURCES.values()), ""]
    return "\n".join(lines)
