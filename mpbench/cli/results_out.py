"""Where `mpbench run` writes (one process or torchrun), and the report it writes there."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

import click
from rich.console import Console

from mpbench.errors import UserError
from mpbench.results.output import check_writable_dir
from mpbench.results.store import MANIFEST, read_json


def default_out(suite_name: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in suite_name)
    return Path("reports") / f"{safe}-{stamp}"


def check_out_dir(out: Path, suite_name: str, resume: bool) -> None:
    check_writable_dir(out)  # also refuses an --out that is a file
    manifest = out / MANIFEST
    if out.is_dir() and any(out.iterdir()) and not resume:
        raise UserError(f"--out: {out} already holds results; pass --resume to continue it, "
                        "or choose another --out")
    if resume and manifest.is_file():
        meta = read_json(manifest, "restore it or choose another --out")
        if not isinstance(meta, dict) or meta.get("suite") != suite_name:
            raise UserError(f"--resume: {out} holds suite '{meta.get('suite')}', not '{suite_name}'; "
                            "choose the matching --out")


def write_report_if_available(console: Console, out: Path) -> None:
    try:
        from mpbench.report import write_report
    except ImportError:
        return
    try:
        path = write_report([out], out / "report.html")
    except Exception as exc:  # the results are saved; a report bug must not hide that
        click.echo(f"error: the report could not be written ({type(exc).__name__}: {exc}); the "
                   f"results in {out} are complete: retry with `mpbench report {out}`", err=True)
        sys.exit(1)
    console.print(f"report:  {path.resolve()}", highlight=False, soft_wrap=True)
