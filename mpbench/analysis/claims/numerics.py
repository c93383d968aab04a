"""Quality and numerics claims: parity with fp32, underflow, loss scaling, the FP16 range."""

from __future__ import annotations

from itertools import pairwise
from statistics import median

from mpbench.analysis.claims.registry import Evidence, claim
from mpbench.analysis.claims.verdict import (
    Bound,
    ClaimOutcome,
    ClaimRow,
    Verdict,
    combine,
    fmt,
    fmt_interval,
    not_measured,
)
from mpbench.analysis.convergence import RecipeConvergence, analyze
from mpbench.analysis.equivalence import Equivalence
from mpbench.results.payloads import NumericsResult, Underflow
from mpbench.results.recipe_card import recipe_card
from mpbench.results.schema import RunRecord

QUALITY = Bound(
    "condition", None, None, "", ("002", "004"), "essentially identical quality; negligible loss",
    "each mixed recipe's final eval loss is equivalent to fp32's (TOST, margin from fp32's "
    "seed-to-seed spread or the suite's tolerance), or better")
NO_SCALING = Bound(
    "condition", None, None, "", ("002", "001"), "BF16 does not need loss scaling",
    "fp16 without scaling flushes >10% more activation gradients to zero than fp16 with it, "
    "and bf16 without scaling flushes no more than the midpoint between the two")
DYNAMIC = Bound(
    "condition", None, None, "", ("000", "002"), "halves on overflow, grows when stable",
    "the fp16 loss scale drops on overflow (skipped steps) and rises after overflow-free steps")
FP16_MAX = (2 - 2**-10) * 2**15
"""Largest finite IEEE half: 10 mantissa bits, largest exponent 15 (= torch.finfo(float16).max)."""
RANGE = Bound(
    "condition", None, None, "", ("002",), "~65,504",
    "fp16 overflow events occur where |values| exceed 65,504 and not below it")
MORE = 1.10  # "loses more": a fraction more than 10% above another


EQUIVALENCE_VERDICT: dict[str, Verdict] = {"equivalent": "holds", "better": "holds",
                                           "worse": "fails"}
"""TOST verdicts of mpbench.analysis.equivalence; better than fp32 also reaches its quality."""


def _parity_row(label: str, rc: RecipeConvergence, eq: Equivalence) -> ClaimRow:
    verdict = EQUIVALENCE_VERDICT.get(eq.verdict, "inconclusive")
    margin = f"±{fmt(eq.margin, 4)}" if eq.margin is not None else "none"
    note = (f"TOST: {eq.verdict}; {eq.confidence:.0%} interval of the eval-loss difference, "
            f"margin {margin} ({eq.margin_source})" + (f"; {eq.note}" if eq.note else ""))
    if eq.seeds_needed:
        note += f"; about {eq.seeds_needed} seeds would decide it"
    row = ClaimRow(label, verdict, note, unit="", value=eq.diff, low=eq.ci_low, high=eq.ci_high,
                   n=eq.n, paired=eq.paired)
    if rc.role == "context":
        row.counted, row.note = False, f"{rc.role_note} (context); {row.note}"
    return row


@claim("quality-parity", "Done right, mixed precision reaches the same model quality as FP32",
       QUALITY, "2+ seeds of fp32 and each mixed recipe, with eval loss")
def quality_parity(ev: Evidence, bound: Bound) -> ClaimOutcome:
    rows: list[ClaimRow] = []
    seeds = 0
    for summary in analyze(ev.records):
        seeds = max(seeds, summary.baseline_seeds)
        label = f"{summary.model} b{summary.batch_size}×t{summary.seq_len}"
        for rc in summary.recipes:
            if rc.precision != summary.baseline and rc.family in ("fp16", "bf16", "fp8") and (
                    rc.equivalence is not None):
                rows.append(_parity_row(f"{label}: {rc.precision}", rc, rc.equivalence))
    if seeds < 2:
        return not_measured("quality needs fp32's seed-to-seed spread: give seeds: [0, 1, 2] "
                            "(or set extensions.convergence.tolerance), with train.eval_batches > 0")
    if not any(r.counted for r in rows):
        return not_measured("no mixed recipe (fp16, bf16, fp8) with eval loss next to fp32")
    counted = [r for r in rows if r.counted]
    verdict = combine([r.verdict for r in counted if r.verdict])
    worst = max(counted, key=lambda r: r.high if r.high is not None else float("inf"))
    measured = f"Δ eval loss {fmt_interval(worst.value, worst.low, worst.high, '')} ({worst.label})"
    reason = (f"{sum(r.verdict == 'holds' for r in counted)} of {len(counted)} recipes reach "
              f"fp32's quality (TOST equivalence, or better); deciding row: {worst.note}")
    return ClaimOutcome(verdict, measured, reason, rows, **worst.interval())


SHARES = ("fraction", "fp32_reference_fraction", "lost_fraction")
"""The underflow shares the claim reads: in the run, in the FP32 reference, flushed to zero."""


def _median_underflow(runs: list[RunRecord]) -> Underflow | None:
    found = [u for r in runs if (p := r.result(NumericsResult)) and (u := p.measured_underflow)]
    if not found:
        return None
    out = {}
    for key in SHARES:
        vals = [v for u in found if (v := getattr(u, key)) is not None]
        if vals:
            out[key] = float(median(vals))
    return Underflow(**out)


def _more(a: float, b: float) -> bool:
    return a > b * MORE + 1e-9


def _bf16_half(label: str, uf: dict[str, Underflow]) -> ClaimRow | None:
    """bf16 unscaled loses about what scaled fp16 loses (or keeps FP32's tiny values)."""
    none = Underflow()
    b = uf.get("bf16", none)
    scaled, unscaled = uf.get("fp16", none).lost_fraction, uf.get("fp16-noscale", none).lost_fraction
    if b.lost_fraction is not None and scaled is not None and unscaled is not None:
        mid = (scaled + unscaled) / 2
        ok = b.lost_fraction <= mid
        return ClaimRow(f"{label}: bf16 lost (fp16 scaled {fmt(scaled, 4)}, unscaled {fmt(unscaled, 4)})",
                        value=b.lost_fraction, unit="", verdict="holds" if ok else "fails",
                        note=f"{'at or below' if ok else 'above'} the midpoint {fmt(mid, 4)}: bf16 "
                             f"without scaling is {'like' if ok else 'unlike'} scaled fp16")
    ref = b.fp32_reference_fraction
    if b.fraction is not None and ref is not None:
        ok = b.fraction <= ref * MORE + 1e-9
        return ClaimRow(f"{label}: bf16 below fp16 subnormal vs fp32 {fmt(ref, 4)}",
                        value=b.fraction, unit="", verdict="holds" if ok else "fails",
                        note="bf16 keeps the tiny values FP32 has" if ok else "bf16 loses tiny values")
    return None


def _fp16_half(label: str, uf: dict[str, Underflow]) -> ClaimRow | None:
    """fp16 without scaling flushes more activation gradients to zero than fp16 with it."""
    none = Underflow()
    s, n = uf.get("fp16", none), uf.get("fp16-noscale", none)
    lost = s.lost_fraction is not None and n.lost_fraction is not None
    key = "lost_fraction" if lost else "fraction"
    scaled, unscaled = getattr(s, key), getattr(n, key)
    if scaled is None or unscaled is None:
        return None
    more = _more(unscaled, scaled)
    return ClaimRow(f"{label}: fp16-noscale {'lost' if lost else key} vs fp16 {fmt(scaled, 4)}",
                    value=unscaled, unit="",
                    verdict="holds" if more else "fails",
                    note="" if more else "no extra underflow without scaling here")


@claim("bf16-no-scaling", "BF16 needs no loss scaling; FP16 without it loses small gradients to "
       "underflow", NO_SCALING, "fp16-noscale, fp16 and bf16 with profilers: [numerics]")
def bf16_no_scaling(ev: Evidence, bound: Bound) -> ClaimOutcome:
    rows: list[ClaimRow] = []
    judged: list[ClaimRow] = []
    for key in ev.compared:
        label = key.label
        runs = {p: ev.groups.ok(key.with_recipe_id(p)) for p in ("bf16", "fp16", "fp16-noscale")}
        uf = {p: u for p, rs in runs.items() if (u := _median_underflow(rs)) is not None}
        for p, u in uf.items():
            rows.append(ClaimRow(f"{label}: {p} flushed to zero", value=u.lost_fraction, n=len(runs[p]),
                                 unit="", counted=False,
                                 note=f"below fp16 subnormal {fmt(u.fraction, 4)}, fp32 "
                                      f"reference {fmt(u.fp32_reference_fraction, 4)}"))
        judged += [r for r in (_bf16_half(label, uf), _fp16_half(label, uf)) if r is not None]
    if not judged:
        return not_measured(f"add {NumericsResult.suite_line()} and the precisions "
                            "fp16-noscale, fp16, bf16 (and fp32)")
    verdict = combine([r.verdict for r in judged if r.verdict])
    halves = {r.label.split(": ")[1].split(" ")[0] for r in judged}
    if verdict == "holds" and len(halves) < 2:
        verdict = "inconclusive"
    measured = "; ".join(f"{r.label.split(': ', 1)[1]}: {fmt(r.value, 4)}" for r in judged)
    reason = ("shares of sampled activation gradients" +
              ("" if len(halves) == 2 else "; only one half of the claim measured: add the "
               "missing precisions (bf16, fp16 and fp16-noscale)"))
    return ClaimOutcome(verdict, measured, reason, judged + rows, n=len(judged))


@claim("dynamic-scaling", "Dynamic loss scaling backs off on overflow and grows when stable",
       DYNAMIC, "fp16 with profilers: [numerics]")
def dynamic_scaling(ev: Evidence, bound: Bound) -> ClaimOutcome:
    runs = [(r, p) for r in ev.ok
            if r.precision == "fp16" and (p := r.result(NumericsResult)) and p.loss_scale]
    if not runs:
        return not_measured(f"add fp16 with {NumericsResult.suite_line()}")
    rows = []
    for r, p in runs:
        scales = [s for _, s in p.loss_scale]
        drops = sum(b < a for a, b in pairwise(scales))
        rises = sum(b > a for a, b in pairwise(scales))
        skipped = p.skipped_count
        v: Verdict
        if skipped and not drops:
            v = "fails"
            note = f"{skipped} skipped steps but the scale never dropped"
        elif drops and rises:
            v, note = "holds", "backed off and grew"
        else:
            v = "inconclusive"
            interval = recipe_card(r).options.get("growth_interval", 2000)
            note = ("no overflow, so no back-off to see" if not drops else
                    f"no growth seen: it needs {interval} overflow-free steps; run longer or "
                    "lower the fp16 recipe's growth_interval option")
        rows.append(ClaimRow(f"{r.run_id}", value=float(scales[-1]), n=len(scales), unit="", verdict=v,
                             note=f"{drops} back-offs, {rises} increases, {skipped} skipped; {note}"))
    verdict = combine([r.verdict for r in rows if r.verdict])
    head = rows[0]
    return ClaimOutcome(verdict, f"final scale {fmt(head.value)}; {head.note.split(';')[0]}",
                        head.note, rows, value=head.value, n=len(rows))


@claim("fp16-range", "FP16 overflows above ~65,504", RANGE,
       "fp16 (or fp16-noscale) with profilers: [numerics]")
def fp16_range(ev: Evidence, bound: Bound) -> ClaimOutcome:
    rows = []
    for r in ev.records:
        p = r.result(NumericsResult)
        if recipe_card(r).family != "fp16" or p is None:
            continue
        o = p.overflow
        amaxes = [float(v) for v in (o.act_amax, o.grad_amax) if v is not None]
        # An inf in fp16 leaves no finite amax; the FP32 reference says what the value
        # would have been (x loss scale), which is what the claim is about.
        event_list = o.events
        amaxes += [e.fp32_scaled_amax for e in event_list if e.fp32_scaled_amax is not None]
        amax = max(amaxes) if amaxes else None
        events = len(event_list)
        if amax is None:
            continue
        v: Verdict
        if events and amax >= FP16_MAX:
            v, note = "holds", f"{events} overflow events with |x| up to {amax:,.0f}"
        elif events:
            v, note = "fails", f"{events} overflow events while |x| stayed at {amax:,.0f}"
        elif amax > FP16_MAX:
            v, note = "fails", f"|x| reached {amax:,.0f} without an overflow event"
        else:
            v, note = "inconclusive", (f"the limit was not reached: max |x| {amax:,.4g} is "
                                       f"{FP16_MAX / amax:,.3g}× below it" if amax > 0
                                       else "all values zero")
        rows.append(ClaimRow(r.run_id, value=amax, n=1, unit="", verdict=v, note=note))
    if not rows:
        return not_measured(f"add fp16 (and fp16-noscale) with {NumericsResult.suite_line()}")
    # A run whose values stayed below the limit says nothing about the limit; where another
    # run reached it, the verdict is that run's (the quiet rows are still listed).
    decided: list[Verdict] = [r.verdict for r in rows if r.verdict in ("holds", "fails")]
    verdict = combine(decided or [r.verdict for r in rows if r.verdict])
    head = max(rows, key=lambda r: r.value or 0.0)
    return ClaimOutcome(verdict, f"max |x| {fmt(head.value)} vs {FP16_MAX:,.0f}", head.note,
                        rows, value=head.value, n=len(rows))
