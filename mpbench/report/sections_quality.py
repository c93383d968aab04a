"""Report sections on what precision does to training: loss curves, numerics, energy."""

from __future__ import annotations

from statistics import median

from mpbench.analysis import convergence
from mpbench.analysis.convergence import Band
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
from mpbench.results.key import ComparisonKey
from mpbench.results.payloads import NumericsResult, NvmlResult
from mpbench.results.schema import RunRecord

MAX_LOSS_PLOTS = 6
MAX_SCALE_LINES = 8


def held_to_end(r: RunRecord, hist: list[tuple[int, float]]) -> list[tuple[int, float]]:
    """The scale history records changes only: hold the last value to the run's last step."""
    last_step = max((int(step) for step, _ in r.loss_curve), default=0)
    return [*hist, (last_step, hist[-1][1])] if hist and last_step > hist[-1][0] else hist


def band_label(band: Band, baseline: str, seeds: int) -> str:
    plural = "s" if seeds != 1 else ""
    if any(sd is not None for sd in band.std):
        return f"{baseline} mean ± {band.band_k:g} stdev ({seeds} seed{plural})"
    return f"{baseline} min-max ({seeds} seed{plural})"


def loss_blocks(s: ResultSet) -> list[Block]:
    opts = convergence.options_from_records(s.records)
    baseline = opts.baseline
    configs: dict[ComparisonKey, dict[str, list[RunRecord]]] = {}
    for cfg, groups in s.groups.comparisons().items():  # runs with a curve, by precision
        if by_p := {g.recipe_id: ok for g in groups if (ok := [r for r in g.ok if r.loss_curve])}:
            configs[cfg] = by_p
    if not configs:
        return [missing("loss curves", "add completed runs")]
    blocks: list[Block] = []
    rows = []
    for n, (cfg, by_p) in enumerate(configs.items()):
        base = by_p.get(baseline, [])
        base_eval = median_of([r.eval_loss for r in base])
        seeds = len({r.seed for r in base})
        if n < MAX_LOSS_PLOTS:
            # the analysis's band (analysis/convergence.py), so band_k moves plot and verdict
            band = convergence.reference_band(base, "train", opts.band_k) if base else None
            floor = next((r.entropy_floor for rs in by_p.values() for r in rs if r.entropy_floor),
                         None)
            lines = {p: convergence.mean_curve(rs, "train") for p, rs in by_p.items()
                     if p != baseline}
            blocks.append(Plot(plots.loss_curves(
                band, baseline, lines, floor, f"{cfg.label}: training loss",
                band_label(band, baseline, seeds) if band else "")))
        for p, rs in by_p.items():
            ev = [r.eval_loss for r in rs if r.eval_loss is not None]
            delta = (median(ev) - base_eval if ev and base_eval is not None and p != baseline
                     else None)
            rows.append([text(cfg.label), Cell(p, p, "prec"),
                         num(float(len(rs)), 0), num(median_of([r.final_train_loss for r in rs]), 4),
                         num(median(ev) if ev else None, 4),
                         text(f"{min(ev):.4f}-{max(ev):.4f}" if len(ev) > 1 else "-"),
                         num(delta, 4), num(rs[0].entropy_floor, 4)])
    if len(configs) > MAX_LOSS_PLOTS:
        blocks.append(Note(f"{len(configs) - MAX_LOSS_PLOTS} more configurations are in the "
                           "table but not plotted."))
    blocks.append(Table(["configuration", "precision", "seeds", "final train loss", "eval loss",
                         "eval range", f"Δ eval vs {baseline}", "entropy floor"], rows,
                        numeric={2, 3, 4, 6, 7}))
    if all(len({r.seed for r in by_p.get(baseline, [])}) < 2 for by_p in configs.values()):
        blocks.append(missing(f"the {baseline} seed-to-seed band",
                              "give the suite seeds: [0, 1, 2]"))
    return blocks


def numerics_blocks(s: ResultSet) -> list[Block]:
    runs = [(r, p) for r in s.records if (p := r.result(NumericsResult)) is not None]
    if not runs:
        return [missing("loss scale, underflow and overflow telemetry",
                        f"add {NumericsResult.suite_line()} with fp16, fp16-noscale and bf16")]
    blocks: list[Block] = []
    series = {f"{r.precision} {r.model} seed {r.seed}": held_to_end(r, p.loss_scale)
              for r, p in runs if p.loss_scale}
    if series:
        shown = dict(list(series.items())[:MAX_SCALE_LINES])
        blocks.append(Plot(plots.step_lines(shown, "loss scale", "FP16 loss scale", log=True)))
    rows = []
    for r, p in runs:
        u, o = p.measured_underflow, p.overflow
        events = o.events
        first = events[0] if events else None
        first_text = (f"step {first.step}: {first.kind} {first.layer or ''}".strip() if first
                      else "-")
        scale = p.loss_scale
        rows.append([text(f"{r.model} {r.batch_size}×{r.seq_len} seed {r.seed}"),
                     Cell(r.precision, r.precision, "prec"), num(float(p.skipped_count), 0),
                     num(scale[-1][1] if scale else None, 0),
                     pct(u.fraction if u else None, 2),
                     pct(u.fp32_reference_fraction if u else None, 2),
                     pct(u.lost_fraction if u else None, 2),
                     num(o.act_amax, 3), num(o.grad_amax, 3),
                     num(float(len(events)), 0), text(first_text)])
    blocks.append(Table(["run", "precision", "skipped steps", "final scale",
                         "below fp16 subnormal", "fp32 reference", "flushed to zero", "act amax",
                         "grad amax", "overflow events", "first event"], rows,
                        numeric={2, 3, 4, 5, 6, 7, 8, 9}))
    blocks.append(Note("FP16's largest finite value is 65,504: amax above it overflows to inf. "
                       "Underflow, over sampled activation gradients: the share at or below "
                       "FP16's smallest subnormal (2⁻²⁴) in the run and in an FP32 reference "
                       "pass on the same batch, and the share the reference has non-zero but "
                       "the run flushed to zero. The gradient amax of a loss-scaled run is "
                       "the scaled value."))
    return blocks


def gpm_line(p: NvmlResult) -> str:
    """GPM utilisations (NVML reports percentages, 0-100), or why there are none."""
    if p.gpm is not None:
        used = p.gpm.model_dump(exclude={"errors"})
        return ", ".join(f"{k} {v:.0f}%" if v is not None else f"{k} failed"
                         for k, v in used.items())
    return f"unsupported: {p.gpm_unsupported}" if p.gpm_unsupported else "-"


def energy_blocks(s: ResultSet) -> list[Block]:
    rows = []
    for g in s.groups:
        profs = [p for r in g.ok if (p := r.result(NvmlResult))]
        if not profs:
            continue
        key = g.key
        rows.append([text(key.comparison.label), Cell(key.recipe_id, key.recipe_id, "prec"),
                     num(median_of([x.joules_per_token for x in profs]), 4),
                     num(median_of([x.energy_j for x in profs]), 1),
                     num(median_of([x.power_w_mean for x in profs]), 0),
                     num(median_of([x.sm_clock_mhz_mean for x in profs]), 0),
                     text(gpm_line(profs[0]))])
    if not rows:
        where = ("NVML reads NVIDIA GPUs only and these runs were on a CPU" if
                 s.device_kind == "cpu" else "no NVML sampler ran")
        return [missing(f"energy per token ({where})",
                        f"run on an NVIDIA GPU with {NvmlResult.suite_line()}")]
    return [Table(["configuration", "precision", "J/token", "energy J", "power W", "SM MHz",
                   "GPM"], rows, numeric={2, 3, 4, 5})]
