"""Report sections on the hardware's side: Tensor Core share, MFU, micro-benchmarks."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from mpbench.analysis.stats import throughput_ratio
from mpbench.bench.ceiling import best_gemm, best_gemm_per_dtype
from mpbench.bench.rows import AlignmentRow, BandwidthRow, GemmRow, PredictionRow
from mpbench.bench.store import bench_rows
from mpbench.dtypes import DtypeKey, recipe_gemm_key
from mpbench.mfu import against
from mpbench.report import plots
from mpbench.report.blocks import (
    Block,
    Cell,
    Note,
    Plot,
    Table,
    missing,
    num,
    pct,
    text,
)
from mpbench.report.resultset import ResultSet, median_of
from mpbench.results.payloads import MfuResult, TensorCoreResult
from mpbench.results.recipe_card import recipe_card
from mpbench.results.schema import RunRecord

BENCH_ADD = "run `mpbench bench` (suites/microbench.yaml) with -o pointing at this results directory"


def compute_key(r: RunRecord) -> DtypeKey:
    """The GEMM dtype a run's matmuls use, in the one vocabulary (mpbench.dtypes)."""
    recipe = recipe_card(r)
    return recipe_gemm_key(recipe.family or r.precision, str(recipe.compute_dtype),
                           recipe.matmul_precision, recipe.gemm_dtype)


def _short(name: str, width: int = 90) -> str:
    return name if len(name) <= width else name[:width - 1] + "…"


def coverage_notes(label: str, prof: TensorCoreResult) -> list[Note]:
    """What the buckets leave out: kernel time in names no rule knows (a gap in the rules,
    by name), and memcpy/memset time, which is not kernel time and not in the shares."""
    notes = []
    if prof.unclassified_share:
        top = ", ".join(f"{_short(k.name)} ({100 * k.share:.1f}%)" for k in prof.unclassified_top)
        notes.append(Note(f"{label}: unclassified: {100 * prof.unclassified_share:.1f}% of kernel "
                          f"time, top names: {top or '-'}", "warn"))
    if prof.copy_time_us:
        notes.append(Note(f"{label}: memcpy/memset (copy engine): {prof.copy_time_us:,.0f} µs, "
                          f"outside the shares (kernel time {prof.total_time_us or 0:,.0f} µs)"))
    return notes


def tensor_core_blocks(s: ResultSet) -> list[Block]:
    share_rows, kernel_rows, buckets = [], [], []
    notes: list[Block] = []
    for g in s.groups:
        prof = next((p for r in g.ok if (p := r.result(TensorCoreResult)) and p.buckets), None)
        if prof is None:
            continue
        buckets.append((g.key, dict(prof.buckets)))
        notes.extend(coverage_notes(g.key.label, prof))
        for k in sorted(prof.top_kernels, key=lambda k: -k.share)[:3]:
            kernel_rows.append([text(g.key.label), Cell(k.name, k.name, "kernel"),
                                text(k.bucket), num(k.time_us, 0), pct(k.share)])
    blocks: list[Block] = []
    if buckets:
        names = sorted({n for _, b in buckets for n in b if b[n]}, key=lambda n: -sum(
            b.get(n, 0.0) for _, b in buckets))  # buckets empty in every run are left out
        share_rows = [[text(k.label), *[pct(b.get(n)) for n in names]] for k, b in buckets]
        blocks.append(Table(["run", *names], share_rows, "Share of device time by kernel bucket",
                            numeric=set(range(1, len(names) + 1))))
        if kernel_rows:
            blocks.append(Table(["run", "top kernel", "bucket", "time µs", "share"], kernel_rows,
                                numeric={3, 4}))
        blocks.extend(notes)
    else:
        blocks.append(missing("the Tensor Core share of device time",
                              f"add {TensorCoreResult.suite_line()} to the suite"))
    if s.device_kind == "cpu":
        blocks.append(Note("A CPU has no tensor cores: on a CPU the buckets split CPU time into "
                           "matmul and the rest."))
    return blocks


def _ceiling(r: RunRecord, s: ResultSet) -> float | None:
    """The best ceiling known for a run: its own (the mfu profiler's) or the bench's best GEMM."""
    prof = r.result(MfuResult)
    best = best_gemm(s.bench, compute_key(r))
    known = [c for c in (prof.ceiling_tflops if prof else None, best.tflops if best else None)
             if c]
    return max(known) if known else None


def mfu_blocks(s: ResultSet) -> list[Block]:
    rows = []
    for g in s.groups:
        ok = g.ok
        if not ok or any(recipe_card(r).numerics_only for r in ok):
            continue
        r = ok[0]
        achieved = median_of([x.achieved_tflops for x in ok])
        prof = r.result(MfuResult)
        ceil = _ceiling(r, s)
        spec, spec_note = against(achieved, r.peak_tflops, "spec peak")
        mfu_ceil, ceil_note = against(achieved, ceil)
        flops_note = ""
        if r.flops_per_token and r.flops_per_token_counter:
            diff = r.flops_per_token_counter / r.flops_per_token - 1
            flops_note = f"counter {diff:+.1%} vs formula"
        rows.append([text(g.key.label), num(achieved, 3), num(r.peak_tflops, 1), pct(spec),
                     text(spec_note or r.peak_source or (prof.spec_note if prof else None)
                          or "unknown device: no spec peak"),
                     num(ceil, 4), pct(mfu_ceil), text(ceil_note or "-"),
                     text(flops_note or r.flops_note)])
    if not rows:
        return [missing("MFU", "add completed runs")]
    blocks: list[Block] = [Table(
        ["run", "achieved TFLOP/s", "spec peak", "MFU (spec)", "peak source", "measured ceiling",
         "MFU (ceiling)", "ceiling note", "FLOPs/token check"], rows, numeric={1, 2, 3, 5, 6})]
    if not any(row[5].sort is not None for row in rows):
        blocks.append(missing("the measured GEMM ceiling per dtype",
                              f"{BENCH_ADD}, or add profilers: [mfu]"))
    return blocks


def _bench_table(typed: Sequence[BaseModel], cols: list[tuple[str, str]], caption: str) -> Table:
    body = []
    for row in typed:
        cells = []
        for key, _ in cols:
            v = getattr(row, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                cells.append(text(v if v is not None else "-"))
            else:  # sizes and counts stay integers
                cells.append(num(float(v), 0 if isinstance(v, int) else 2))
        body.append(cells)
    numeric = {i for i, (k, _) in enumerate(cols) if any(isinstance(getattr(r, k), (int, float))
                                                         for r in typed)}
    return Table([label for _, label in cols], body, caption, numeric)


def _measured_gain(s: ResultSet, dtype: str, baseline: str) -> float | None:
    for g in s.groups:
        ok = [r for r in g.ok if not recipe_card(r).numerics_only]
        if ok and compute_key(ok[0]) == dtype:
            base = [r for r in s.groups.ok(g.key.comparison.with_recipe_id(baseline))
                    if not recipe_card(r).numerics_only]
            est = throughput_ratio(base, ok) if base else None
            if est is not None:
                return est.value
    return None


def microbench_blocks(s: ResultSet) -> list[Block]:
    if not s.bench:
        return [missing("micro-benchmarks (GEMM, alignment, bandwidth, predicted gain)", BENCH_ADD)]
    blocks: list[Block] = []
    gemm = bench_rows(s.bench, GemmRow, ok_only=False)
    if gemm:
        blocks.append(_bench_table(gemm, [("dtype", "dtype"), ("shape", "shape"), ("m", "M"),
                                          ("n", "N"), ("k", "K"), ("tflops", "TFLOP/s"),
                                          ("rel_error", "rel. error"), ("status", "status"),
                                          ("reason", "note")], "GEMM"))
        best = best_gemm_per_dtype(s.bench)
        if best:
            names: list[str] = list(best)
            blocks.append(Plot(plots.bars_with_ci(names, [r.tflops or 0.0 for r in best.values()],
                                                  [None] * len(names), [None] * len(names),
                                                  [plots.color(n) for n in names], "TFLOP/s",
                                                  "Best GEMM TFLOP/s per dtype (the ceiling)")))
    for model, cols in (
        (AlignmentRow, [("dtype", "dtype"), ("k", "K = N"), ("multiple_of", "multiple of"),
                       ("tflops", "TFLOP/s"), ("relative_to_aligned", "vs aligned"),
                       ("status", "status"), ("reason", "note")]),
        (BandwidthRow, [("dtype", "dtype"), ("op", "op"), ("elements", "elements"),
                       ("gbps", "GB/s"), ("elements_per_s", "elements/s"), ("vs_fp32", "vs fp32"),
                       ("status", "status")]),
    ):
        rows = bench_rows(s.bench, model, ok_only=False)
        if rows:
            name = "alignment" if model is AlignmentRow else "bandwidth"
            blocks.append(_bench_table(rows, cols, name.capitalize()))
    pred = bench_rows(s.bench, PredictionRow, ok_only=False)
    if pred:
        pred = [p.model_copy(update={"measured_speedup": p.measured_speedup or _measured_gain(
            s, p.dtype, p.baseline)}) for p in pred]
        blocks.append(_bench_table(pred, [
            ("dtype", "dtype"), ("baseline", "over"), ("gemm_speedup", "GEMM speedup"),
            ("gemm_share", "GEMM share"), ("predicted_amdahl", "predicted (Amdahl)"),
            ("predicted_roofline", "predicted (roofline)"), ("measured_speedup", "measured"),
            ("share_source", "share from")], "Predicted vs measured end-to-end gain"))
    else:
        blocks.append(missing("the predicted vs measured gain", BENCH_ADD))
    return blocks


def fp8_blocks(s: ResultSet) -> list[Block]:
    """How each FP8 recipe ran: backend, formats, scaling, which layers went to FP8."""
    rows = []
    seen: set[str] = set()
    for r in s.records:
        card = recipe_card(r)
        d = card.fp8
        if d is None or r.precision in seen:
            continue
        seen.add(r.precision)
        layers, kept = d.layers_in_fp8, d.layers_kept_bf16
        rows.append([Cell(r.precision, r.precision, "prec"), text(d.backend),
                     text(d.formats), text(d.scaling),
                     text(f"{len(layers)} FP8, {len(kept or [])} kept BF16" if layers is not None
                          else "-"), pct(d.fp8_weight_fraction),
                     text("numerics only" if card.numerics_only else r.status)])
    if not rows:
        return []
    return [Table(["FP8 recipe", "backend", "formats", "scaling", "linear layers",
                   "weights in FP8", "runs"], rows, "FP8 recipes as they ran", numeric={5})]
