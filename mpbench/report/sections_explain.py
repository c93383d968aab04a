"""Report section 'Where the time went, and which layers to convert': the waterfall of every
recipe against its baseline (analysis/waterfall.py, the same figures `mpbench explain` prints)
and the advisor's stored advice with its verification (results/advice.py)."""

from __future__ import annotations

from markupsafe import Markup

from mpbench.analysis.step_parts import LABELS, OVERHEAD, UNATTRIBUTED
from mpbench.analysis.waterfall import Waterfall, waterfalls
from mpbench.report import plots
from mpbench.report.blocks import Block, Cell, Note, Plot, Table, missing, num, pct, text
from mpbench.report.resultset import ResultSet
from mpbench.results.advice import AdviceRecord, MeasuredRatio, load_advice


@plots.styled
def waterfall_plot(w: Waterfall) -> Markup:
    """Signed bars, one per part, each starting where the one above ended (a waterfall)."""
    bars = w.bars
    labels = [LABELS[p] for p, _ in bars] + ["measured difference"]
    fig = plots.figure(7.0, 0.3 * len(labels) + 1.0)
    ax = fig.add_subplot()
    ys = list(range(len(labels)))[::-1]
    start = 0.0
    for y, (part, ms) in zip(ys, bars, strict=False):
        rest = part in (UNATTRIBUTED, OVERHEAD)
        shade = "#b8bfcc" if rest else ("#a3be8c" if ms < 0 else "#bf616a")
        ax.barh([y], [ms], left=[start], color=shade, height=0.6, hatch="//" if rest else None)
        start += ms
    ax.barh([ys[-1]], [w.delta_ms], color="#4c566a", height=0.6)
    ax.axvline(0, color="#2e3440", lw=0.8)
    ax.set_yticks(ys, labels)
    ax.set_xlabel(f"ms per step, {w.recipe.precision} minus {w.baseline.precision} "
                  "(green: saves, red: costs)")
    title = f"{w.key.comparison.label}: {w.recipe.precision} vs {w.baseline.precision}"
    ax.set_title(title, loc="left")
    ax.grid(axis="x", alpha=0.3)
    plots.margins(fig, 0.25 + plots.text_width(labels), 0.3)
    return plots.inline_svg(fig, title)


def _waterfall_table(found: list[Waterfall]) -> Table:
    present = {p for w in found for p, _ in w.bars}
    parts = [p for p in LABELS if p in present]  # GEMMs split where the records allow
    rows = []
    for w in found:
        rows.append([text(w.key.label), num(w.baseline.step_ms, 2), num(w.recipe.step_ms, 2),
                     num(w.delta_ms, 3), *[num(dict(w.bars).get(p), 3) for p in parts],
                     num(w.unattributed_noise_ms, 3), pct(w.attributed_fraction)])
    return Table(["run", "baseline ms", "recipe ms", "difference ms",
                  *[LABELS[p] for p in parts], "unattributed noise ± ms",
                  "named parts / difference"], rows,
                 "Measured step-time difference (median of run medians) and its parts, ms per "
                 "step; the parts and the unattributed rest sum to the difference; the noise is "
                 "two standard errors of the unattributed bar from the steps' own spread",
                 numeric=set(range(1, len(parts) + 6)))


def waterfall_blocks(s: ResultSet) -> list[Block]:
    found, absent = waterfalls(s.records)
    blocks: list[Block] = []
    if found:
        blocks.append(_waterfall_table(found))
        blocks += [Plot(waterfall_plot(w)) for w in found]
        blocks.append(Note(
            "Parts are per-step differences of the tensor_cores profiler's buckets (profiled "
            "steps after the measured window). Just before them the profile times plain steps "
            "with no profiler: 'host work, gaps' is what no kernel or operator covers in the "
            "profiled steps (launch gaps, host work, idle); 'unattributed' is the measured "
            "difference against the plain steps' (runs that differ, load that changed on a "
            "shared machine, and the two windows' sampling noise, whose size the table gives). "
            "On a CPU the profiler's own cost lands inside the operators' times; the recipe's "
            "extra cost (profiled less plain steps) is taken off the named parts as its own "
            "bar. GEMMs are split into forward and backward by the phase of the operator that "
            "ran them; the advisor's table splits them further per layer (forward, input and "
            "weight gradient)."
            + (" On a CPU, casts are the cast operators among the profiler's top operators."
               if s.device_kind == "cpu" else "")))
        numerics = [w for w in found if w.numerics_only]
        if numerics:
            blocks.append(Note("Numerics-only recipes (emulated) are shown for where their time "
                               "goes; their speed is never an FP8 speedup.", "warn"))
    elif absent:
        blocks.append(missing("where each recipe's time went (the waterfall)",
                              "add `profilers: [tensor_cores]` to the suite"))
    return blocks + advice_blocks(s)


def _measured(m: MeasuredRatio | None) -> Cell:
    if m is None:
        return text("-")
    ci = f" [{m.low:.3f}, {m.high:.3f}]" if m.low is not None and m.high is not None else ""
    return Cell(f"×{m.value:.3f}{ci}", m.value, title=m.basis)


def _advice_blocks(a: AdviceRecord) -> list[Block]:
    rows = [[text(x.name), num(x.in_features, 0), num(x.out_features, 0),
             *[num(v, 3) for v in x.baseline_ms], *[num(v, 3) for v in x.recipe_ms],
             num(x.gain_ms, 3), num(x.gain_hw_ms, 3),
             text("yes" if x.pays else "no")] for x in a.layers]
    flags = ", ".join(a.cpu_isa_flags) or "-"
    blocks: list[Block] = [Table(
        ["layer", "in", "out", "base fwd", "base dgrad", "base wgrad", "recipe fwd",
         "recipe dgrad", "recipe wgrad", "gain ms/step", "± ms", "advised"], rows,
        f"Advisor: {a.model}, {a.recipe} vs {a.baseline}, {a.tokens_per_step} tokens per step, "
        f"on {a.device_name} (ISA flags: {flags}); ms per step, ± the half-width of the gain "
        "over the paired repetitions", numeric=set(range(1, 11)))]
    v = a.verification
    pred_rows = []
    for what, pred, meas, err, verdict in (
            ("every layer", a.predicted_all, v.measured_all if v else None,
             v.error_all if v else None, v.verdict_all if v else "not verified"),
            (f"advised ({len(a.advised)} of {len(a.layers)})", a.predicted_advised,
             v.measured_advised if v else None, v.error_advised if v else None,
             v.verdict_advised if v else "not verified")):
        miss = verdict == "miss"
        pred_rows.append([text(what), num(pred, 3), _measured(meas),
                          pct(err) if err is not None else text("-"),
                          text(verdict.upper() if miss else verdict, "v-fails" if miss else "")])
    blocks.append(Table(["layers in the recipe", "predicted step ratio", "measured (runs)",
                         "prediction error", "verdict"], pred_rows,
                        f"Step time {a.recipe} / {a.baseline}; a miss is off by more than "
                        f"{100 * (v.tolerance if v else 0.10):.0f}% and outside the measured "
                        "run-level interval; inconclusive: off by more, inside an interval "
                        "that wide", numeric={1, 3}))
    if a.decision:
        blocks.append(Note(f"Decision: {a.decision}."))
    blocks.append(Note(f"{a.filter_line()} (advisor's own timings: {a.advisor_s:.1f} s)",
                       "info" if a.pays else "warn"))
    if v is not None and (v.miss_all or v.miss_advised):
        blocks.append(Note("The prediction missed: the waterfall of the verification runs "
                           f"(results in {v.results_dir}) shows where the time went.", "warn"))
    if v is not None and v.advised_slower_than_all:
        blocks.append(Note("The advised set measured slower than the recipe on every layer "
                           "beyond both intervals.", "warn"))
    return blocks


def advice_blocks(s: ResultSet) -> list[Block]:
    if not s.path.is_dir():
        return []
    return [b for a in load_advice(s.path) for b in _advice_blocks(a)]
