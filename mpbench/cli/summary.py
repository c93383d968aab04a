"""The summary table printed after a run and by `mpbench show`."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from mpbench.analysis.compare import baseline_for, group_runs, speedup
from mpbench.results.env import cpu_16bit_note
from mpbench.results.schema import RunRecord


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
    groups = group_runs(records)
    for g in groups:
        if g.status == "skipped":
            continue  # listed once per recipe under the table (skipped_lines)
        tps = g.median_of("tokens_per_s")
        ratio = speedup(g, baseline_for(g, groups))
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
            g.model, f"{g.precision} ({g.variant})" if g.variant else g.precision,
            g.setting.removeprefix("b").replace("×t", " x ", 1), f"{tps:,.0f}" if tps else "-", sp, human_bytes(g.peak_memory_bytes),
            f"{train_loss:.4f}" if train_loss is not None else "-",
            f"{eval_loss:.4f}" if eval_loss is not None else "-", status,
        )
    return table


def skipped_lines(records: list[RunRecord]) -> list[str]:
    """One line per skipped recipe and reason, instead of a table row per model and seed."""
    by_reason: dict[tuple[str, str], set[str]] = {}
    for r in records:
        if r.status == "skipped":
            by_reason.setdefault((r.precision, r.reason or ""), set()).add(r.model)
    return [f"skipped {name} ({', '.join(sorted(models))}): {reason}"
            for (name, reason), models in by_reason.items()]


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
    for line in skipped_lines(records):
        console.print(line, highlight=False, soft_wrap=True)
    note = machine_note(records)
    if note:
        console.print(note, soft_wrap=True)
