"""`mpbench report --history DIR...`: one page, a trend plot per configuration and metric with
its change points marked (the same series and change points as `mpbench history`)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from jinja2 import Environment
from markupsafe import Markup

import mpbench
from mpbench.analysis.history import Series, build_series, load_points
from mpbench.errors import UserError
from mpbench.report.plots import figure, inline_svg, margins, styled
from mpbench.results.output import write_output

KIND_COLOR = {"regression": "#bf616a", "improvement": "#a3be8c", "change": "#8f9bb3"}

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mpbench history: {{ suite }}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em auto;max-width:60em;color:#2e3440}
svg.plot{width:100%;height:auto}td,th{padding:.2em .6em;text-align:left}
.regression{color:#bf616a;font-weight:bold}.improvement{color:#4f7a3a}</style></head><body>
<h1>mpbench history: {{ suite }}</h1>
<p>{{ points|length }} results, oldest first by start time: {{ points|join(", ") }}.
Each point is the median of its runs' median step times (one run is one sample); change
points by ruptures' PELT on the log values, counted when they move the metric by more than
{{ min_change }}. Generated {{ generated }} by mpbench {{ version }}.</p>
{% if latest %}<p class="regression">Regressed, not recovered at the latest point:
{{ latest|join("; ") }}.</p>{% else %}<p>No open regression at the latest point.</p>
{% endif %}
{% for s in series %}<h2>{{ s.config }}: {{ s.metric }}</h2>{{ s.svg }}
{% if s.changes %}<table><tr><th>at</th><th>before</th><th>after</th><th>change</th><th>kind</th>
</tr>{% for c in s.changes %}<tr class="{{ c.kind }}"><td>{{ c.at }}</td><td>{{ c.before }}</td>
<td>{{ c.after }}</td><td>{{ c.change }}</td><td>{{ c.kind }}</td></tr>{% endfor %}</table>
{% endif %}{% endfor %}
</body></html>
"""


@styled
def trend_plot(s: Series, labels: list[str]) -> Markup:
    fig = figure(7.0, 2.4)
    ax = fig.add_subplot()
    pts = [(i, v) for i, v in enumerate(s.values) if v is not None]
    ax.plot([i for i, _ in pts], [v for _, v in pts], marker="o", ms=3, lw=1.2, color="#5e81ac")
    for cp in s.change_points:
        ax.axvline(cp.index - 0.5, color=KIND_COLOR[cp.kind], lw=1, ls="--")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(f"{s.metric} ({s.unit})")
    ax.set_title(f"{s.config}: {s.metric}", loc="left")
    ax.grid(alpha=0.3)
    margins(fig, 0.8, 0.2, bottom=0.9)
    return inline_svg(fig, f"{s.config} {s.metric}")


def write_history_report(paths: list[Path], out: Path, min_change: float = 0.05) -> Path:
    points = load_points(paths)
    labels = [p.label for p in points]
    series = build_series(points, min_change)
    latest = [f"{s.config} {s.metric} {cp.change:+.1%} since {labels[cp.index]}" for s in series
              if (cp := s.open_regression) is not None]
    rows = [{"config": s.config, "metric": s.metric, "svg": trend_plot(s, labels),
             "changes": [{"at": labels[c.index], "before": f"{c.before:.4g}",
                          "after": f"{c.after:.4g}", "change": f"{c.change:+.1%}",
                          "kind": c.kind} for c in s.change_points]} for s in series]
    page = Environment(autoescape=True).from_string(PAGE).render(
        suite=points[0].records[0].suite, points=labels, series=rows, latest=latest,
        min_change=f"{min_change:.0%}", version=mpbench.__version__,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    if out.is_dir():
        raise UserError(f"-o/--out: {out} is a directory; give a file name such as "
                        f"{out / 'history.html'}")
    write_output(out, page, "--out")
    out.chmod(0o644)
    return out
