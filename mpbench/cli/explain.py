"""`mpbench explain RESULTS`: where each recipe's step time went against its baseline."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from mpbench.analysis.step_parts import LABELS
from mpbench.analysis.waterfall import TENSOR_CORES_FIX, Waterfall, has_profiles, waterfalls
from mpbench.errors import UserError
from mpbench.results.store import load_records

BAR_CHARS = 24


def waterfall_lines(w: Waterfall) -> list[str]:
    """The waterfall as text: the measured difference, then every part and the rest."""
    r = w.ratio
    interval = (f" [{r.low:.2f}, {r.high:.2f}]" if r is not None and r.has_interval
                else " (no run-level interval: fewer than 2 runs a side)")
    head = (f"{w.key.comparison.label}: {w.recipe.precision} vs {w.baseline.precision}  "
            f"{w.baseline.step_ms:.2f} -> {w.recipe.step_ms:.2f} ms/step "
            f"({w.delta_ms:+.2f} ms, x{(r.value if r else float('nan')):.2f}{interval}; "
            f"{w.baseline.runs} vs {w.recipe.runs} runs)")
    lines = [head]
    for side in (w.baseline, w.recipe):
        if side.options:
            lines.append(f"  {side.precision}: {side.options}"[:400])
    if w.numerics_only:
        lines.append("  numerics only here (emulated): its speed is not an FP8 speedup")
    scale = max((abs(v) for _, v in w.bars), default=0.0) or 1.0
    for part, ms in w.bars:
        n = round(abs(ms) / scale * BAR_CHARS)
        bar = ("+" if ms > 0 else "-") * n
        lines.append(f"  {LABELS[part]:<34} {ms:+8.3f} ms  {bar}")
    notes = []
    if w.attributed_fraction is not None:
        notes.append(f"named parts: {100 * w.attributed_fraction:.0f}% of it")
    noise = w.unattributed_noise_ms
    if noise is not None:
        inside = "within" if w.unattributed_within_noise else "beyond"
        notes.append(f"unattributed {inside} the two windows' sampling noise, ±{noise:.2f} ms")
    lines.append(f"  {'sum = measured difference':<34} {w.delta_ms:+8.3f} ms"
                 + (f"  ({'; '.join(notes)})" if notes else ""))
    over_b, over_r = w.baseline.overhead_ms, w.recipe.overhead_ms
    if over_b is not None and over_r is not None:
        where = ("its difference is the overhead bar" if w.overhead_ms is not None
                 else "in no bar")
        lines.append(f"  (the profiler's own cost, profiled less plain steps: {over_b:.2f} ms "
                     f"per step in {w.baseline.precision}, {over_r:.2f} ms in "
                     f"{w.recipe.precision}; {where})")
    return lines


@click.command("explain")
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--baseline", default=None, metavar="RECIPE",
              help="Compare every recipe with this one (default: fp32; bf16 for FP8/FP4).")
def explain(results: Path, baseline: str | None) -> None:
    """Where each recipe's step time went against its baseline (a waterfall).

    The measured step-time difference from the baseline is split into GEMMs, attention,
    casts, norm+elementwise, optimizer, communication, host time outside every operator and
    the unattributed rest (the measured window against the plain steps timed with the profile).

    \b
    Reads the tensor_cores profiler's buckets stored in the runs (nothing is re-measured).
    Example:
      mpbench explain reports/gpt-20261206-1200
    """
    records = load_records(results)
    if not has_profiles(records):
        raise UserError(f"{results}: no run has the tensor_cores profiler's buckets (the "
                        f"waterfall reads them); {TENSOR_CORES_FIX}")
    found, missing = waterfalls(records, baseline)
    if baseline is not None and not found and not any(
            r.config_key.recipe_id == baseline for r in records):
        names = sorted({r.config_key.recipe_id for r in records})
        raise UserError(f"--baseline {baseline}: no such recipe in {results}; "
                        f"recipes there: {', '.join(names)}")
    console = Console(width=150) if not Console().is_terminal else Console()
    device = records[0].device_name if records else "?"
    console.print(f"where the step time went (measured on {device}; parts from the tensor_cores "
                  "profiler's profiled steps, per step; ms, recipe minus baseline)",
                  highlight=False)
    for w in found:
        console.print("", highlight=False)
        for line in waterfall_lines(w):
            console.print(line, highlight=False, markup=False)
    for m in missing:
        console.print(f"{m.key.label}: no waterfall: {m.reason}", highlight=False, markup=False)


COMMANDS = [explain]
