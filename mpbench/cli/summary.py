"""The summary table printed after a run, and `mpbench show RESULTS` that prints it for a
results directory."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from mpbench.analysis.compare import Groups, speedup
from mpbench.results.env import cpu_16bit_note
from mpbench.results.schema import RunRecord
from mpbench.results.store import load_records


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def summary_table(records: list[RunRecord]) -> Table:
    table = Table(title="mpbench summary (medians over runs; speedup = tokens/s over fp32, "
                        "run-level 95% CI)")
    for col in ("model", "precision", "batch x seq", "tokens/s", "speedup vs fp32", "peak mem", "train loss",
                "eval loss", "status"):
        table.add_column(col, justify="right" if col not in ("model", "precision", "batch x seq", "status") else "left")
    groups = Groups(records)
    for g in groups:
        if g.status == "skipped":
            continue  # listed once per reason under the table (skipped_records)
        tps = g.median_of("tokens_per_s")
        ratio = speedup(g, groups.baseline(g))
        if ratio is None:
            sp = "-"
        elif g.role == "baseline":
            sp = "1.00x (baseline)"
        elif ratio.low is None or ratio.high is None:  # under 2 runs a side: no interval
            sp = f"{ratio.value:.2f}x (1 run: no CI)" if ratio.n < 2 else f"{ratio.value:.2f}x"
        else:
            sp = f"{ratio.value:.2f}x [{ratio.low:.2f}, {ratio.high:.2f}]"
        if ratio is not None and g.numerics_only:
            sp += " (numerics only)"
        status = g.status if g.status == "ok" else f"{g.status}: {g.reason or ''}"
        train_loss, eval_loss = g.median_of("final_train_loss"), g.median_of("eval_loss")
        table.add_row(
            g.model, f"{g.recipe_id} ({g.variant})" if g.variant else g.recipe_id,
            g.setting.removeprefix("b").replace("×t", " x ", 1), f"{tps:,.0f}" if tps else "-", sp, human_bytes(g.peak_memory_bytes),
            f"{train_loss:.4f}" if train_loss is not None else "-",
            f"{eval_loss:.4f}" if eval_loss is not None else "-", status,
        )
    return table


def skipped_lines(skips: Iterable[tuple[str, str, str]]) -> list[str]:
    """(recipe, model, reason) of skipped runs as one line per reason, naming each recipe once
    (with its models where not every skipped run's model): before the runs and under the
    summary alike."""
    by_reason: dict[str, dict[str, set[str]]] = {}
    for precision, model, reason in skips:
        # "fp8-te-delayed (TransformerEngine ...) needs a CUDA GPU; ...": one line for every
        # recipe that needs the same thing (each record keeps its whole reason)
        _, needs, rest = reason.partition(" needs ")
        why = f"needs {rest}" if needs else reason
        by_reason.setdefault(why, {}).setdefault(precision, set()).add(model)
    models = {m for recipes in by_reason.values() for ms in recipes.values() for m in ms}
    lines = []
    for reason, recipes in by_reason.items():
        names = [name if ms == models else f"{name} ({', '.join(sorted(ms))})"
                 for name, ms in recipes.items()]
        lines.append(f"skipped here, {reason or 'no reason given'}: {', '.join(names)}")
    return lines


def skipped_records(records: list[RunRecord]) -> list[str]:
    return skipped_lines((r.precision, r.model, r.reason or "") for r in records
                         if r.status == "skipped")


def machine_note(records: list[RunRecord]) -> str | None:
    """What the numbers mean on this device (the CPU's ISA decides 16-bit speed)."""
    if not records:
        return None
    r = records[0]
    if r.device.startswith("cuda"):
        gpu = r.env.gpu
        if gpu is None:
            return f"Measured on {r.device_name}."
        return f"Measured on {gpu.name} (compute capability {gpu.capability})."
    mem = "Peak memory on a CPU is peak RSS above the run's starting RSS (allocator caching blurs small differences)."
    return f"Measured on {r.env.cpu.model}. {cpu_16bit_note(r.env.cpu)} {mem}"


def print_summary(console: Console, records: list[RunRecord]) -> None:
    console.print(summary_table(records))
    for line in skipped_records(records):
        console.print(line, highlight=False, soft_wrap=True)
    note = machine_note(records)
    if note:
        console.print(note, soft_wrap=True)


@click.command("show")
@click.argument("results", type=click.Path(path_type=Path))
def show(results: Path) -> None:
    """Print the summary table of a results directory.

    \b
    Example:
      mpbench show reports/gpt-20261123-120000
    """
    records = load_records(results)
    console = Console()
    if not console.is_terminal:
        console = Console(width=150)
    if not records:
        console.print(f"{results}: no runs recorded yet")
        return
    print_summary(console, records)


COMMANDS = [show]
