"""Report sections on speed and memory: throughput, memory breakdown, max batch, comparison."""

from __future__ import annotations

from mpbench.analysis.stats import median_interval, spread_warning, throughput_ratio
from mpbench.report import plots
from mpbench.report.blocks import (
    Block,
    Cell,
    Note,
    Plot,
    Section,
    SetBlocks,
    Table,
    missing,
    nbytes,
    num,
    ratio,
    text,
)
from mpbench.report.resultset import ResultSet, median_of
from mpbench.results.payloads import MaxBatchResult, MemoryResult
from mpbench.results.recipe_card import recipe_card
from mpbench.results.schema import RunRecord


def tokens_interval(runs: list[RunRecord]) -> tuple[float | None, float | None, float | None]:
    """Median tokens/s, with the interval of the median step time carried over to it."""
    tps = median_of([r.tokens_per_s for r in runs])
    steps = [t for r in runs for t in r.step_times_ms]
    if tps is None or len(steps) < 3:
        return tps, None, None
    med = median_interval(steps)
    if med.low is None or med.high is None or med.low <= 0:
        return tps, None, None
    return tps, tps * med.value / med.high, tps * med.value / med.low


def throughput_blocks(s: ResultSet) -> list[Block]:
    rows, labels, values, lows, highs, colors = [], [], [], [], [], []
    warnings = []
    for g in s.groups:
        key, runs, ok = g.key, g.records, g.ok
        if not ok:  # never ran or never finished: listed under "Skipped and failed runs"
            continue
        status = "ok" if len(ok) == len(runs) else ", ".join(sorted({r.status for r in runs}))
        tps, lo, hi = tokens_interval(ok)
        base = s.groups.baseline_runs(g)
        emulated = any(recipe_card(r).numerics_only for r in runs)
        baseline = g.role == "baseline"
        sp = (throughput_ratio(base, ok) if base and not baseline and not emulated else None)
        stats = [r.step_stats for r in ok if r.step_stats]
        step = median_of([st.median_ms for st in stats])
        p10, p90 = median_of([st.p10_ms for st in stats]), median_of([st.p90_ms for st in stats])
        note = "numerics only: its speed is no figure for the format" if emulated else ""
        if status != "ok":
            reason = next((r.reason for r in runs if r.reason), "")
            note = f"{status}: {reason}".strip(": ")
        rows.append([
            text(key.model), Cell(key.recipe_id, key.recipe_id, "prec"), text(key.comparison.setting_label),
            num(float(len(ok)), 0), num(tps, 0),
            Cell(f"{step:.1f} ({p10:.1f}-{p90:.1f})" if step and p10 and p90 else "-", step),
            Cell("1.00× (baseline)", 1.0) if baseline and ok else
            ratio(sp.value, sp.low, sp.high) if sp else text("-"),
            text(note)])
        if tps is not None and not emulated:
            labels.append(key.label)
            values.append(tps)
            lows.append(lo)
            highs.append(hi)
            colors.append(plots.color(key.recipe_id))
        for r in ok[:1]:
            w = spread_warning(r.step_times_ms)
            if w:
                warnings.append(f"{key.label}: {w}")
    if not rows:
        return [missing("throughput (no run completed)", "see Skipped and failed runs")]
    blocks: list[Block] = [Table(
        ["model", "precision", "batch×seq", "runs", "tokens/s", "step ms (p10-p90)",
         "speedup over fp32 [95% CI]", "note"], rows, numeric={3, 4, 5, 6})]
    if values:
        blocks.append(Plot(plots.bars_with_ci(labels, values, lows, highs, colors, "tokens/s",
                                              "Training throughput (median, 95% CI)")))
    if warnings:
        blocks.append(Note("Noisy timings: " + "; ".join(warnings[:6]) +
                           (f"; and {len(warnings) - 6} more" if len(warnings) > 6 else ""),
                           "warn"))
    return blocks


def memory_blocks(s: ResultSet) -> list[Block]:
    rows, labels, peaks = [], [], []
    parts: dict[str, list[float]] = {p.removesuffix("_bytes"): [] for p in MemoryResult.PARTS}
    any_breakdown = False
    max_rows = []
    for g in s.groups:
        key, ok = g.key, g.ok
        if not ok:
            continue
        r = ok[0]
        peak = median_of([x.peak_memory() for x in ok])
        m = r.result(MemoryResult)
        m = m if m is not None and m.has_parts else None
        any_breakdown |= m is not None
        comp = [getattr(m, p) if m else None for p in MemoryResult.PARTS]
        total = sum(c for c in comp if c is not None) if m else None
        rows.append([text(key.model), Cell(key.recipe_id, key.recipe_id, "prec"), text(key.comparison.setting_label),
                     nbytes(peak), text(r.memory.kind if r.memory else None), *[nbytes(c) for c in comp],
                     Cell(f"{total / peak:.0%}" if total and peak else "-",
                          total / peak if total and peak else None,
                          title="sum of the parts over the measured peak")])
        labels.append(key.label)
        peaks.append(peak)
        for name, c in zip(parts, comp, strict=True):
            parts[name].append(float(c or 0.0))
        mb = r.result(MaxBatchResult)
        if mb and mb.max_batch_size is not None:
            max_rows.append([text(key.model), Cell(key.recipe_id, key.recipe_id, "prec"), text(str(key.seq_len)),
                             num(float(mb.max_batch_size), 0), text(mb.limit or "")])
    if not rows:
        return [missing("memory", "add completed runs")]
    cols = ["model", "precision", "batch×seq", "peak", "kind",
            *(p.removesuffix("_bytes") for p in MemoryResult.PARTS), "parts/peak"]
    blocks: list[Block] = [Table(cols, rows, numeric={3, *range(5, 12)})]
    if any_breakdown:
        scale = 2**20
        blocks.append(Plot(plots.stacked_bars(
            labels, {k: [v / scale for v in vals] for k, vals in parts.items() if any(vals)},
            [p / scale if p is not None else None for p in peaks], "MiB",
            "Memory by part (stacked) and measured peak")))
    else:
        blocks.append(missing("the memory breakdown (params, grads, optimizer, activations)",
                              f"add {MemoryResult.suite_line()} to the suite"))
        if any(p is not None for p in peaks):
            blocks.append(Plot(plots.bars_with_ci(
                labels, [(p or 0) / 2**20 for p in peaks], [None] * len(peaks),
                [None] * len(peaks), [plots.color(lb.split()[-1]) for lb in labels], "MiB",
                "Peak memory")))
    if s.device_kind == "cpu":
        blocks.append(Note("On a CPU, peak memory is the peak RSS above the run's starting RSS; "
                           "allocator caching blurs differences in small models."))
    if max_rows:
        blocks.append(Table(["model", "precision", "seq", "max batch", "limit"], max_rows,
                            "Largest batch that fits", numeric={3}))
    else:
        blocks.append(missing("the largest batch per precision",
                              f"add {MaxBatchResult.suite_line()} to the suite"))
    return blocks


def comparison_section(sets: list[ResultSet]) -> Section | None:
    """Matched configurations across result sets, each later set over the first."""
    if len(sets) < 2:
        return None
    first = sets[0]
    rows = []
    for g in first.groups:
        base = g.ok
        if not base:
            continue
        cells = [text(g.key.label), num(median_of([r.tokens_per_s for r in base]), 0)]
        matched = False
        for other in sets[1:]:
            runs = other.groups.ok(g.key)
            est = throughput_ratio(base, runs) if runs else None
            matched |= est is not None
            cells += [num(median_of([r.tokens_per_s for r in runs]), 0) if runs else text("-"),
                      ratio(est.value, est.low, est.high) if est else text("-"),
                      nbytes(median_of([r.peak_memory() for r in runs])),
                      num(median_of([r.eval_loss for r in runs]), 4)]
        if matched:
            rows.append(cells)
    cols = ["configuration", f"tokens/s ({first.label})"]
    for other in sets[1:]:
        cols += [f"tokens/s ({other.label})", f"{other.label} / {first.label} [95% CI]",
                 f"peak ({other.label})", f"eval loss ({other.label})"]
    blocks: list[Block] = ([Table(cols, rows, numeric=set(range(1, len(cols))))] if rows else
                           [Note("No configuration (model, batch, seq, precision) appears in "
                                 "more than one result set.", "missing")])
    return Section("comparison", "Side by side", f"Each result set against {first.label}: "
                   "throughput ratios with 95% bootstrap intervals.",
                   [SetBlocks("all result sets", blocks)])
