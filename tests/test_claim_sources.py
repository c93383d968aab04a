"""Issue 13: the claims' source ids point at a sources table shipped with mpbench and shown in
the report."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixture_records import record, write_results

from mpbench.analysis.claims import CLAIMS
from mpbench.analysis.claims.registry import SOURCES, source_anchor
from mpbench.report.render import bounds_table, render_html, render_markdown, sources_table
from mpbench.report.resultset import ResultSet

pytestmark = pytest.mark.unit


def test_every_cited_source_is_in_the_table_with_a_title_and_an_address_or_why_not() -> None:
    cited = {i for spec in CLAIMS.values() for i in spec.bound.sources}
    assert cited and cited <= set(SOURCES), cited - set(SOURCES)
    for s in SOURCES.values():
        assert s.title
        assert (s.url or "").startswith("https://") or (s.url is None and s.note), s.id
    assert SOURCES["003"].url == "https://www.pertamapartners.com/glossary/mixed-precision-training"


def test_report_links_each_source_id_to_its_row(tmp_path: Path) -> None:
    bounds = bounds_table()
    col = bounds.columns.index("source")
    memory = next(row for row in bounds.rows if row[0].text == "memory-halving")
    assert memory[col].links == (("003", "#source-003"), ("001", "#source-001"))
    assert "003: What is Mixed Precision Training?" in memory[col].title
    table = sources_table()
    assert [row[0].anchor for row in table.rows] == [source_anchor(i) for i in SOURCES]
    claims_of_003 = table.rows[list(SOURCES).index("003")][table.columns.index("claims")].text
    assert "speedup-amp" in claims_of_003 and "cost-savings" in claims_of_003

    s = ResultSet.load(write_results(tmp_path / "r", [record("fp32")]))
    html = render_html([s])
    assert '<a href="#source-003">003</a>' in html and 'id="source-003"' in html
    assert "https://avichala.com/blog/mixed-precision-training-in-llms" in html
    assert 'source <a href="#source-003">003</a>, <a href="#source-001">001</a>)' in html
    assert "003 What is Mixed Precision Training? (https://www.pertamapartners.com" in (
        render_markdown([s]))
