"""Quality against FP32: a seed band per step, equivalence of final eval loss, time to target.

`analyze(records)` is the entry point shared by the report and the gate: one
`ConvergenceSummary` per model x batch x sequence length that has FP32 runs, with per
recipe a `RecipeConvergence` (curve vs the FP32 band, `Equivalence` verdict from
mpbench.analysis.equivalence, `TimeToTarget`). Everything has `as_dict()`.

Seeds pair up: runs with the same seed share initial weights, batch order and eval
batches in mpbench, so by default each recipe's seed is compared with FP32's same seed.
A suite may tune the analysis under `extensions.convergence` (see ConvergenceOptions).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import ValidationError

from mpbench.analysis.compare import Group, Groups
from mpbench.analysis.equivalence import Equivalence, equivalence_test, spread_margin
from mpbench.analysis.time_to_target import TimeToTarget, time_to_target
from mpbench.config.schema import ConvergenceOptions
from mpbench.errors import UserError
from mpbench.results.schema import RunRecord

Curve = Literal["eval", "train"]


def options_from_records(records: list[RunRecord]) -> ConvergenceOptions:
    """The suite's `extensions.convergence` section, validated (UserError names the field)."""
    raw: Any = {}
    for r in records:
        raw = (r.suite_config.get("extensions") or {}).get("convergence") or {}
        break
    try:
        return ConvergenceOptions.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise UserError(f"extensions.convergence.{where}: {err['msg'].lower()} "
                        f"(got {err.get('input')!r}); fix the suite file") from None


def curve_of(record: RunRecord, curve: Curve) -> dict[int, float]:
    """{step: loss}; a repeated step keeps its last value."""
    points = record.eval_curve if curve == "eval" else record.loss_curve
    return {int(s): float(v) for s, v in points}


@dataclass
class Band:
    """FP32 seed band: per step the mean, sample stdev, min and max over seeds."""

    curve: Curve
    steps: list[int]
    mean: list[float]
    std: list[float | None]
    low: list[float]
    high: list[float]
    """mean -+ band_k * std (min and max over seeds where std is unknown)."""
    n: list[int]
    band_k: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def at(self, step: int) -> tuple[float, float | None] | None:
        try:
            i = self.steps.index(step)
        except ValueError:
            return None
        return self.mean[i], self.std[i]


def reference_band(records: list[RunRecord], curve: Curve = "eval", band_k: float = 2.0) -> Band | None:
    curves = [curve_of(r, curve) for r in records if r.status == "ok"]
    curves = [c for c in curves if c]
    if not curves:
        return None
    steps = sorted(set().union(*curves))
    band = Band(curve, [], [], [], [], [], [], band_k)
    for s in steps:
        values = np.array([c[s] for c in curves if s in c])
        sd = float(values.std(ddof=1)) if values.size >= 2 else None
        m = float(values.mean())
        band.steps.append(s)
        band.mean.append(m)
        band.std.append(sd)
        band.low.append(m - band_k * sd if sd is not None else float(values.min()))
        band.high.append(m + band_k * sd if sd is not None else float(values.max()))
        band.n.append(int(values.size))
    return band


@dataclass
class CurveComparison:
    """A recipe's mean curve against the FP32 band at the steps both have."""

    steps: list[int]
    mean: list[float]
    diff: list[float]
    """recipe mean - FP32 mean."""
    z: list[float | None]
    """diff in FP32 stdevs at that step."""
    inside_fraction: float | None
    """Share of steps (with a known FP32 stdev) where |diff| <= band_k * stdev."""
    max_abs_z: float | None
    final_diff: float | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def mean_curve(records: list[RunRecord], curve: Curve) -> list[tuple[int, float]]:
    """Per step, the mean over the finished runs that have it (what the band is judged on)."""
    curves = [c for c in (curve_of(r, curve) for r in records if r.status == "ok") if c]
    steps = sorted(set().union(*curves)) if curves else []
    return [(s, float(np.mean([c[s] for c in curves if s in c]))) for s in steps]


def compare_curve(records: list[RunRecord], band: Band, curve: Curve = "eval") -> CurveComparison | None:
    means = mean_curve(records, curve)
    if not means:
        return None
    out = CurveComparison([], [], [], [], None, None, None)
    inside = judged = 0
    for s, m in means:
        ref = band.at(s)
        if ref is None:
            continue
        diff = m - ref[0]
        z = diff / ref[1] if ref[1] else None
        out.steps.append(s)
        out.mean.append(m)
        out.diff.append(diff)
        out.z.append(z)
        if z is not None:
            judged += 1
            inside += abs(z) <= band.band_k
    if out.steps:
        out.final_diff = out.diff[-1]
        zs = [abs(z) for z in out.z if z is not None]
        out.max_abs_z = max(zs) if zs else None
        out.inside_fraction = inside / judged if judged else None
    return out


@dataclass
class RecipeConvergence:
    precision: str
    family: str
    numerics_only: bool
    n_runs: int
    statuses: dict[str, int]
    final_eval_loss: float | None
    """Mean over the seeds that finished."""
    floor_gap: float | None
    """final_eval_loss - the data's entropy floor (synthetic source only)."""
    curve: CurveComparison | None
    equivalence: Equivalence | None
    time_to_target: TimeToTarget | None
    reason: str | None = None
    role: str = "other"
    """The recipe's role (results/recipe_card.RecipeRole); role_note says why for context."""
    role_note: str = ""

    def as_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("precision", "family", "numerics_only", "n_runs",
                                             "statuses", "final_eval_loss", "floor_gap", "reason",
                                             "role", "role_note")}
        for k in ("curve", "equivalence", "time_to_target"):
            part = getattr(self, k)
            out[k] = part.as_dict() if part is not None else None
        return out


@dataclass
class ConvergenceSummary:
    model: str
    batch_size: int
    seq_len: int
    baseline: str
    band: Band | None
    baseline_seeds: int
    entropy_floor: float | None
    options: ConvergenceOptions
    recipes: list[RecipeConvergence] = field(default_factory=list)
    not_run: dict[str, str] = field(default_factory=dict)
    """Recipes with no finished or diverged run (skipped, failed, oom), with the reason."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "batch_size": self.batch_size, "seq_len": self.seq_len,
            "baseline": self.baseline, "baseline_seeds": self.baseline_seeds,
            "band": self.band.as_dict() if self.band else None,
            "entropy_floor": self.entropy_floor, "options": self.options.model_dump(),
            "recipes": [r.as_dict() for r in self.recipes], "not_run": self.not_run,
        }


def final_losses(group: Group[RunRecord]) -> dict[int, float]:
    return {r.seed: float(r.eval_loss) for r in group.ok if r.eval_loss is not None}


def equivalence_margin(base: Group[RunRecord], opts: ConvergenceOptions) -> tuple[float | None, str]:
    """The user's tolerance, or margin_k FP32 seed-to-seed stdevs of final eval loss."""
    if opts.tolerance is not None:
        return opts.tolerance, "tolerance (extensions.convergence.tolerance)"
    margin = spread_margin(list(final_losses(base).values()), opts.margin_k)
    return margin, f"{opts.margin_k:g} x FP32 seed-to-seed stdev of final eval loss"


def recipe_equivalence(group: Group[RunRecord], base: Group[RunRecord], opts: ConvergenceOptions) -> Equivalence:
    mine, ref = final_losses(group), final_losses(base)
    diverged = sum(r.status == "diverged" for r in group.records)
    diverged -= min(diverged, sum(r.status == "diverged" for r in base.records))
    margin, source = equivalence_margin(base, opts)
    common = sorted(mine.keys() & ref.keys())
    if opts.paired and len(common) >= 2 and group is not base:
        return equivalence_test([mine[s] for s in common], [ref[s] for s in common], margin,
                                opts.alpha, True, source, diverged)
    return equivalence_test(list(mine.values()), list(ref.values()), margin, opts.alpha, False,
                            source, diverged)


def target_slack(base: Group[RunRecord], opts: ConvergenceOptions) -> float:
    if opts.target_slack is not None:
        return opts.target_slack
    return equivalence_margin(base, opts)[0] or 0.0


def _recipe(group: Group[RunRecord], base: Group[RunRecord], band: Band | None, opts: ConvergenceOptions,
            base_times: TimeToTarget | None) -> RecipeConvergence:
    statuses: dict[str, int] = {}
    for r in group.records:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    finals = list(final_losses(group).values())
    final = float(np.mean(finals)) if finals else None
    floor = group.records[0].entropy_floor
    ttt = time_to_target(group.ok, final_losses(base), target_slack(base, opts))
    if ttt is not None and base_times is not None and group is not base:
        ttt.compare_with(base_times)
    return RecipeConvergence(
        group.recipe_id, group.family, group.numerics_only, len(group.records), statuses, final,
        final - floor if final is not None and floor is not None else None,
        compare_curve(group.records, band, band.curve) if band is not None else None,
        recipe_equivalence(group, base, opts) if group is not base else None, ttt,
        group.reason if not group.ok else None, group.role, group.role_note,
    )


def analyze(records: list[RunRecord], options: ConvergenceOptions | None = None) -> list[ConvergenceSummary]:
    """One summary per comparison group (results/key.py) that has baseline runs."""
    opts = options or options_from_records(records)
    groups = Groups(records)
    out = []
    for base in groups:
        if base.recipe_id != opts.baseline:
            continue
        band = reference_band(base.records, "eval", opts.band_k)
        if band is None:
            band = reference_band(base.records, "train", opts.band_k)
        floor = base.records[0].entropy_floor
        summary = ConvergenceSummary(base.model, base.batch_size, base.seq_len, opts.baseline,
                                     band, len(base.ok), floor, opts)
        base_times = time_to_target(base.ok, final_losses(base), target_slack(base, opts))
        for g in groups.comparison(base.key.comparison):
            if not any(r.status in ("ok", "diverged") for r in g.records):
                summary.not_run[g.recipe_id] = f"{g.status}: {g.reason or 'no reason recorded'}"
                continue
            summary.recipes.append(_recipe(g, base, band, opts, base_times))
        out.append(summary)
    return out

