"""The report: one self-contained HTML page (or a Markdown verdict table) from results dirs."""

from __future__ import annotations

from pathlib import Path

from mpbench.errors import UserError
from mpbench.results.output import write_output

FORMATS = ("html", "md")


def write_report(results_dirs: list[Path], out: Path, fmt: str = "html") -> Path:
    """Render the results directories side by side into `out`; returns `out`.

    Raises UserError for a missing or corrupt results directory or an unknown format.
    """
    from mpbench.report.render import render_html, render_markdown
    from mpbench.report.resultset import ResultSet

    if fmt not in FORMATS:
        raise UserError(f"--format: unknown format '{fmt}'; use one of {', '.join(FORMATS)}")
    if not results_dirs:
        raise UserError("give at least one results directory")
    paths = [Path(p) for p in results_dirs]
    labels = unique_labels(paths)
    sets = [ResultSet.load(p, label) for p, label in zip(paths, labels, strict=True)]
    page = render_html(sets) if fmt == "html" else render_markdown(sets)
    out = Path(out)
    if out.is_dir():
        raise UserError(f"-o/--out: {out} is a directory; give a file name such as "
                        f"{out / ('report.' + fmt)}")
    write_output(out, page, "report")
    out.chmod(0o644)  # a page to share, not a private temp file
    return out


def unique_labels(paths: list[Path]) -> list[str]:
    """Directory names, made unique with their parent where two are alike."""
    names = [p.resolve().name or str(p) for p in paths]
    out = []
    for p, name in zip(paths, names, strict=True):
        out.append(f"{p.resolve().parent.name}/{name}" if names.count(name) > 1 else name)
    return out
