"""Build the page: load each results directory, evaluate the claims, render the template."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

import mpbench
from mpbench.analysis.claim_sources import SOURCES, source_anchor
from mpbench.analysis.claims import CLAIMS
from mpbench.analysis.claims.verdict import POINT_MARGIN
from mpbench.analysis.stats import throughput_ratio
from mpbench.config.claim_ids import CLAIM_IDS
from mpbench.report.blocks import Cell, Table, text
from mpbench.report.outline import sections
from mpbench.report.resultset import ResultSet
from mpbench.report.sections_meta import (
    VERDICT_CLASS,
    claim_details,
    verdict_counts,
    verdict_table,
)
from mpbench.results.recipe_card import recipe_card


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
            best = (est.value, g.precision, g.model)
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
