"""Speed claims: training throughput of 16-bit and FP8 recipes over their baselines."""

from __future__ import annotations

from mpbench.analysis.claims.registry import APPROX, Evidence, claim
from mpbench.analysis.claims.verdict import (
    Bound,
    ClaimOutcome,
    ClaimRow,
    combine,
    judge,
    judged_row,
    not_applicable,
    not_measured,
    outcome_from_rows,
)
from mpbench.analysis.convergence import analyze
from mpbench.analysis.stats import Interval, median_interval, throughput_ratio
from mpbench.analysis.time_to_target import TimeToTarget
from mpbench.bench.rows import GemmRow
from mpbench.bench.store import bench_rows
from mpbench.results.payloads import NvmlResult
from mpbench.results.recipe_card import recipe_card

SPEEDUP_AMP = Bound(
    "at_least", 2.0, None, "×", ("003",), "2-3x speedups",
    "the low end of '2-3x': tokens/s at least 2.0× strict fp32's (above 3× still holds)")
SPEEDUP_RANGE = Bound(
    "within", 1.5, 3.0, "×", ("003",), "range from 1.5x to 3x",
    "each configuration's speedup over fp32 lies in 1.5×-3× (needs 2+ model or batch sizes)")
FP8_2X = Bound(
    "at_least", 2.0 * (1 - APPROX), None, "×", ("002",), "another 2x speedup",
    "'another ~2x' over bf16, read with 10% slack: fp8 tokens/s at least 1.8× bf16's")


def cpu_context(ev: Evidence) -> str:
    if ev.device != "cpu":
        return ""
    native = "has" if ev.caps.bf16 else "has no"
    return (f"Measured on a CPU ({ev.caps.name}): no tensor cores; this CPU {native} a "
            "native bf16 matmul path (avx512_bf16/AMX) and fp16 has none, so the claim's GPU "
            "figure fails here")


def mixed_rows(ev: Evidence) -> list[ClaimRow]:
    """Each 16-bit mixed recipe over fp32 per configuration; the faster one counts."""
    rows: list[ClaimRow] = []
    for key, groups in ev.compared.items():
        base = ev.groups.baseline_runs(key)
        if not base:
            continue
        config_rows = []
        for g in groups:
            if g.role != "mixed":
                continue
            runs = [r for r in g.ok if not recipe_card(r).numerics_only]
            est = throughput_ratio(base, runs) if runs else None
            if est is not None:
                config_rows.append(judged_row(f"{key.label}: {g.recipe_id}/fp32",
                                              est, SPEEDUP_AMP))
        if config_rows:
            best = max(config_rows, key=lambda r: r.value or 0.0)
            for r in config_rows:
                if r is not best:
                    r.counted = False
                    r.note = "the slower 16-bit recipe here (context); " + r.note
            rows.extend(config_rows)
    return rows


@claim("speedup-amp", "Mixed precision (FP16/BF16) trains 2-3x faster than FP32", SPEEDUP_AMP,
       "fp32 and fp16 or bf16 in precisions")
def speedup_amp(ev: Evidence, bound: Bound) -> ClaimOutcome:
    if not any(ev.groups.baseline_runs(key) for key in ev.compared):
        return not_measured("no completed fp32 baseline: "
                            f"{ev.why_missing(ev.with_role('baseline') or {'fp32'})}")
    rows = mixed_rows(ev)
    if not rows:
        return not_measured("no completed fp16/bf16 run next to fp32: "
                            f"{ev.why_missing(ev.with_role('mixed') or {'fp16', 'bf16'})}")
    return outcome_from_rows(rows, bound, "configurations (faster 16-bit recipe over fp32)",
                             cpu_context(ev))


@claim("speedup-range", "Speedups range from 1.5x to 3x depending on architecture and batch size",
       SPEEDUP_RANGE, "two or more models or batch sizes, each with fp32 and fp16/bf16")
def speedup_range(ev: Evidence, bound: Bound) -> ClaimOutcome:
    rows = [r for r in mixed_rows(ev) if r.counted]
    if len(rows) < 2:
        have = f"{len(rows)} configuration" + ("" if len(rows) == 1 else "s")
        return not_measured(f"{have} with a speedup; add a second model size (models:) or a "
                            "second batch size so the range can show")
    for r in rows:
        r.verdict, why = judge(r.value, r.low, r.high, bound)
        r.note = why
    values = [r.value for r in rows if r.value is not None]
    verdict = combine([r.verdict for r in rows if r.verdict is not None])
    inside = sum(r.verdict == "holds" for r in rows)
    measured = f"{min(values):.2f}× to {max(values):.2f}× over {len(rows)} configurations"
    reason = f"{inside} of {len(rows)} configurations inside {bound.text}"
    note = cpu_context(ev)
    return ClaimOutcome(verdict, measured, reason + (f". {note}" if note else ""),
                        rows, value=float(sorted(values)[len(values) // 2]), low=min(values),
                        high=max(values), n=len(rows))


def _fp8_capability_missing(ev: Evidence) -> str | None:
    if ev.device == "cpu":
        return ("FP8 tensor cores (NVIDIA compute capability 8.9 or newer): a CPU has none, and "
                "emulated FP8 here is numerics only")
    if not ev.caps.fp8:
        return (f"FP8 tensor cores: {ev.caps.name} has compute capability "
                f"{ev.caps.capability}, FP8 needs 8.9 or newer")
    return None


def _fp8_gemm_rows(ev: Evidence) -> list[ClaimRow]:
    by_shape: dict[tuple[object, ...], dict[str, float]] = {}
    for r in bench_rows(ev.bench, GemmRow):
        if r.tflops and not r.numerics_only:
            by_shape.setdefault((r.shape, r.m, r.n, r.k), {})[r.dtype] = r.tflops
    ratios = [d["fp8"] / d["bf16"] for d in by_shape.values() if "fp8" in d and "bf16" in d]
    if not ratios:
        return []
    est = median_interval(ratios, "GEMM shapes")
    return [judged_row("GEMM TFLOP/s fp8/bf16", est, FP8_2X)]


@claim("fp8-2x", "FP8 promises another ~2x over BF16", FP8_2X,
       "an FP8 recipe and bf16 in precisions, on a GPU with FP8 tensor cores")
def fp8_2x(ev: Evidence, bound: Bound) -> ClaimOutcome:
    missing = _fp8_capability_missing(ev)
    if missing is not None:
        fp8 = [r for r in ev.records if recipe_card(r).family == "fp8"]
        seen = f"{len(fp8)} FP8 runs recorded as numerics only or skipped" if fp8 else "-"
        return not_applicable(missing, seen)
    rows: list[ClaimRow] = []
    for key, groups in ev.compared.items():
        base = ev.groups.ok(key.with_recipe_id("bf16"))
        config_rows = []
        for g in groups:
            hw = [r for r in g.ok if recipe_card(r).family == "fp8" and not recipe_card(r).numerics_only]
            est = throughput_ratio(base, hw) if base and hw else None
            if est is not None:
                config_rows.append(judged_row(f"{key.label}: {g.recipe_id}/bf16",
                                              est, bound))
        if config_rows:  # the fastest FP8 recipe of the configuration counts
            best = max(config_rows, key=lambda r: r.value or 0.0)
            for r in config_rows:
                r.counted = r is best
            rows.extend(config_rows)
    rows.extend(_fp8_gemm_rows(ev))
    if not rows:
        fp8_names = {r.precision for r in ev.records if recipe_card(r).family == "fp8"}
        why = (ev.why_missing(fp8_names) if fp8_names
               else "add an FP8 recipe (TransformerEngine or torchao) to precisions")
        return not_measured(f"no hardware FP8 run next to bf16: {why}; or run `mpbench bench`")
    return outcome_from_rows(rows, bound, "comparisons (fp8 over bf16)")


# -- cost: time to reach fp32's final eval loss (mpbench.analysis.time_to_target) -----------
COST_SAVINGS = Bound(
    "at_least", 30.0, None, "%", ("003",), "30-50%",
    "the low end of '30-50%': at least 30% less training time than fp32 to reach fp32's final "
    "eval loss (same seed)")


def _cost_row(label: str, ttt: TimeToTarget) -> ClaimRow:
    if ttt.saving is None:
        why = "; ".join(ttt.notes) or "no time ratio"
        return ClaimRow(f"{label} reached fp32's loss in {ttt.reached} of {ttt.n} seeds",
                        n=ttt.n, unit="%", verdict="inconclusive", note=(
                 f"{why}: train longer or evaluate more often (train.eval_every) so the crossing shows"))
    value = 100.0 * ttt.saving
    low = 100.0 * (1 - ttt.time_ratio_high) if ttt.time_ratio_high is not None else None
    high = 100.0 * (1 - ttt.time_ratio_low) if ttt.time_ratio_low is not None else None
    basis = (f"{ttt.n} seeds" if low is not None else "one seed each: no interval")
    energy = (f"; energy saved {100 * ttt.energy_saving:.0f}%" if ttt.energy_saving is not None
              else "")
    clock = "; ".join(ttt.notes)
    est = Interval(value, low, high, ttt.n, ttt.n, False, basis)
    return judged_row(label, est, COST_SAVINGS, unit="%", note=(
        f"{ttt.median_time_s:.2f} s to fp32's final eval loss{energy}" +
        (f"; {clock}" if clock else "")))


@claim("cost-savings", "Mixed precision saves 30-50% of compute cost", COST_SAVINGS,
       "fp32 and fp16/bf16 runs with eval loss (energy: profilers: [nvml] on a GPU)")
def cost_savings(ev: Evidence, bound: Bound) -> ClaimOutcome:
    rows: list[ClaimRow] = []
    for summary in analyze(ev.records):
        label = f"{summary.model} b{summary.batch_size}×t{summary.seq_len}"
        config_rows = [_cost_row(f"{label}: {rc.precision}", rc.time_to_target)
                       for rc in summary.recipes
                       if rc.role == "mixed" and not rc.numerics_only
                       and rc.time_to_target is not None]
        if config_rows:  # the cheaper 16-bit recipe counts, as for speed
            best = max(config_rows, key=lambda r: r.value if r.value is not None else -1e30)
            for r in config_rows:
                r.counted = r is best
            rows.extend(config_rows)
    if not rows:
        return not_measured("needs fp32 and fp16/bf16 runs with an eval loss "
                            "(train.eval_batches > 0) in one configuration")
    note = ("time = training time until the eval loss first reaches fp32's final eval loss of "
            "the same seed (interpolated between eval points)")
    if not any((nv := r.result(NvmlResult)) and nv.joules_per_token is not None for r in ev.ok):
        note += "; energy not measured (profilers: [nvml] on an NVIDIA GPU)"
    return outcome_from_rows(rows, bound, "configurations (time saved vs fp32)", note)
