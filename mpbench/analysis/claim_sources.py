"""The articles the claims come from: the ids a Bound's `sources` names ("003"), each with its
title and where a reader finds it. Shipped with mpbench so that a report's source ids point at
something its reader has; the report renders this table and links each id to its row.

Titles are the articles' own headings; addresses are where each article is published (found by
its title and publisher). Where no address could be established, `url` is None and `note` says
what identifies the article instead: the report never invents an address.
"""

from __future__ import annotations

from pydantic import BaseModel


class Source(BaseModel):
    id: str
    title: str
    publisher: str | None = None
    date: str | None = None
    url: str | None = None
    note: str | None = None


SOURCES: dict[str, Source] = {s.id: s for s in (
    Source(id="000", title="Mixed Precision Training In LLMs", publisher="Avichala (blog)",
           date="2025-11-11", url="https://avichala.com/blog/mixed-precision-training-in-llms"),
    Source(id="001", title="The Power of Mixed Precision Training in LLM Training",
           publisher="Metric Coders", date="2025",
           note="address not established; find it by title on the publisher's site"),
    Source(id="002", title="What Is Mixed Precision Training?",
           note="an explainer with a one-line summary, prerequisites and further reading "
                "(Micikevicius et al., NVIDIA); publisher and address not established"),
    Source(id="003", title="What is Mixed Precision Training?",
           publisher="Pertama Partners, AI Glossary (LLM Training & Alignment)",
           url="https://www.pertamapartners.com/glossary/mixed-precision-training"),
    Source(id="004", title="What is Mixed Precision Training? Meaning and Definition",
           publisher="AI Knowledge Base (Generative AI and LLM)",
           url="https://ai-knowledge-base.com/?p=344"),
)}


def source_anchor(source_id: str) -> str:
    """The HTML id of a source's row in the report's sources table."""
    return f"source-{source_id}"
