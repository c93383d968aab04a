"""Render result sets: the HTML page (evaluate the claims, lay out the sections in order, each
one block builder applied to every result set, render the template), or the short Markdown
summary (the verdict table, for CI logs and pull requests)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

import mpbench
from mpbench.analysis.claims import CLAIMS
from mpbench.analysis.claims.registry import SOURCES, source_anchor
from mpbench.analysis.claims.verdict import POINT_MARGIN
from mpbench.analysis.stats import throughput_ratio
from mpbench.config.claim_ids import CLAIM_IDS
from mpbench.report.blocks import Block, Cell, Section, SetBlocks, Table, text
from mpbench.report.resultset import ResultSet
from mpbench.report.sections_explain import waterfall_blocks
from mpbench.report.sections_fingerprint import fingerprint_section
from mpbench.report.sections_kernels import (
    fp8_blocks,
    mfu_blocks,
    microbench_blocks,
    tensor_core_blocks,
)
from mpbench.report.sections_meta import (
    VERDICT_CLASS,
    claim_details,
    env_blocks,
    failures_blocks,
    verdict_counts,
    verdict_table,
)
from mpbench.report.sections_perf import comparison_section, memory_blocks, throughput_blocks
from mpbench.report.sections_quality import energy_blocks, loss_blocks, numerics_blocks
from mpbench.report.sections_scaling import scaling_section
from mpbench.results.recipe_card import recipe_card


@dataclass(frozen=True)
class PerSet:
    """A section whose every result set gets the blocks `build` makes from it."""

    id: str
    title: str
    intro: str
    build: Callable[[ResultSet], list[Block]]

    def section(self, sets: list[ResultSet]) -> Section:
        return Section(self.id, self.title, self.intro,
                       [SetBlocks(s.label, self.build(s)) for s in sets])


def _tensor_core_blocks(s: ResultSet) -> list[Block]:
    return tensor_core_blocks(s) + mfu_blocks(s) + fp8_blocks(s)


ENVIRONMENT = PerSet("environment", "Environment",
                     "The machine, software and suite each result set was measured with.",
                     env_blocks)
THROUGHPUT = PerSet("throughput", "Throughput",
                    "Tokens per second over the measured window (after warm-up), and each "
                    "precision's speedup over strict FP32 for the same model, batch and "
                    "sequence.", throughput_blocks)
AFTER_COMPARISON = (
    PerSet("memory", "Memory and max batch",
           "Peak memory per run, broken down by what holds it where the memory profiler ran, "
           "and the largest batch each precision fits.", memory_blocks),
    PerSet("tensor-cores", "Tensor Core share and MFU",
           "Where the device time goes, and model FLOP utilisation against the dtype's spec "
           "peak and against the best GEMM measured on this device.", _tensor_core_blocks),
    PerSet("explain", "Where the time went, and which layers to convert",
           "Each recipe's measured step-time difference from its baseline (FP32; BF16 for FP8) "
           "split into GEMMs, attention, casts, norm and elementwise work, optimizer, "
           "communication, host work outside every operator and the unattributed rest; the "
           "per-layer advisor's timings, filter "
           "and its prediction against trained runs.", waterfall_blocks),
    PerSet("microbench", "Micro-benchmarks",
           "GEMM throughput per dtype, the alignment penalty, bandwidth-bound ops, and the "
           "end-to-end gain predicted from them next to the measured one.", microbench_blocks),
    PerSet("loss", "Loss curves and quality",
           "Training loss per step: FP32's band over seeds as the convergence verdict "
           "judges it (mean ± band_k stdev, extensions.convergence.band_k) and the mean "
           "curve of every other precision; final and eval losses.", loss_blocks),
    PerSet("numerics", "Numerics",
           "Loss-scale history, skipped steps, gradient underflow and overflow.",
           numerics_blocks),
    PerSet("energy", "Energy per token",
           "GPU energy over the measured window (NVML), per token trained.", energy_blocks),
    PerSet("failures", "Skipped and failed runs",
           "A run that could not run or did not finish is a result: here is why.",
           failures_blocks),
)


def sections(sets: list[ResultSet]) -> list[Section]:
    """Environment, throughput, the cross-set comparison (two sets or more), then the rest."""
    cmp = comparison_section(sets)
    scaling = scaling_section(sets)  # distributed runs only
    fp = fingerprint_section(sets)  # result sets with numerics fingerprints
    return [ENVIRONMENT.section(sets), THROUGHPUT.section(sets), *([cmp] if cmp else []),
            *([scaling] if scaling else []), *([fp] if fp else []),
            *(p.section(sets) for p in AFTER_COMPARISON)]


def environment() -> Environment:
    # autoescape for every template: user strings (suite names, paths, reasons) are escaped
    return Environment(loader=PackageLoader("mpbench.report", "templates"), autoescape=True,
                       undefined=StrictUndefined, trim_blocks=False, lstrip_blocks=False)


def headline(s: ResultSet) -> str:
    """One sentence: the fastest precision against fp32, per the first configuration measured."""
    best: tuple[float, str, str] | None = None
    for g in s.groups:
        if g.role == "baseline":
            continue
        ok = [r for r in g.ok if not recipe_card(r).numerics_only]
        base = s.groups.baseline_runs(g)
        est = throughput_ratio(base, ok) if ok and base else None
        if est is not None and (best is None or est.value > best[0]):
            best = (est.value, g.recipe_id, g.model)
    if best is None:
        return "No precision could be compared with an fp32 baseline."
    value, precision, model = best
    if value < 1:
        return (f"No precision beat strict fp32 here: the fastest, {precision} on {model}, ran at "
                f"{value:.2f}× fp32's throughput.")
    return f"Fastest against strict fp32: {precision} on {model}, {value:.2f}× fp32's throughput."


def card(s: ResultSet) -> dict[str, Any]:
    r = s.first
    device = r.env.capabilities(r.device, r.device_name).name if r else "-"
    ok = sum(x.status == "ok" for x in s.records)
    return {"label": s.label, "device": device, "suite": s.suite,
            "profile": r.profile if r else "-", "runs": f"{ok} of {len(s.records)} runs ok",
            "headline": headline(s), "counts": verdict_counts(s)}


def source_cell(ids: tuple[str, ...]) -> Cell:
    """Source ids, each a link to its row of the sources table, titled by its article."""
    titles = "; ".join(f"{i}: {SOURCES[i].title}" for i in ids if i in SOURCES)
    return Cell(", ".join(ids), ", ".join(ids), title=titles,
                links=tuple((i, f"#{source_anchor(i)}") for i in ids))


def bounds_table() -> Table:
    rows = []
    for cid in CLAIM_IDS:
        b = CLAIMS[cid].bound
        rows.append([Cell(cid, cid, "claim"), text(f"“{b.figure}”"), source_cell(b.sources),
                     text(b.reading)])
    return Table(["claim", "quoted figure", "source", "read as"], rows)


def sources_table() -> Table:
    rows = []
    for s in SOURCES.values():
        claims = [c for c in CLAIM_IDS if s.id in CLAIMS[c].bound.sources]
        # the address as text, not a link: the page stays self-contained (no outside hrefs)
        address = text(s.url or s.note or "address not established")
        rows.append([Cell(s.id, s.id, anchor=source_anchor(s.id)), text(s.title),
                     text(" · ".join(x for x in (s.publisher, s.date) if x) or "-"), address,
                     text(", ".join(claims) or "-")])
    return Table(["id", "title", "publisher", "address", "claims"], rows)


def render_html(sets: list[ResultSet]) -> str:
    suites = sorted({s.suite for s in sets})
    devices = [s.first.env.capabilities(s.first.device, s.first.device_name).name
               for s in sets if s.first]
    context = {
        "title": ", ".join(suites) or "no results",
        "subtitle": f"{len(sets)} result set{'s' if len(sets) != 1 else ''} · "
                    f"{sum(len(s.records) for s in sets)} runs · " + " | ".join(devices),
        "cards": [card(s) for s in sets],
        "verdict_table": verdict_table(sets),
        "claim_details": claim_details(sets),
        "verdict_class": VERDICT_CLASS,
        "sections": sections(sets),
        "bounds_table": bounds_table(),
        "sources_table": sources_table(),
        "point_margin": f"{POINT_MARGIN:.0%}",
        "version": mpbench.__version__,
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "paths": ", ".join(str(s.path) for s in sets),
    }
    return environment().get_template("report.html.j2").render(**context)


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
