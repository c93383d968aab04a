"""The fingerprint comparison the gate and the report read: one verdict per recipe, the first
step, layer and tensor where the numbers left the repeat tolerance (and the band), with the
values on both sides, and the software and recipe settings that differ between the sides.

Inputs that cannot be compared (different seeds, data, models or training settings) are a
UserError naming the field: comparing them would call any difference a regression.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mpbench.analysis.fingerprint import (
    LEVELS,
    Fingerprint,
    FingerprintSet,
    Level,
    RepeatTolerance,
    SeedBand,
    difference,
    fingerprint_set,
    kind_of,
    relative,
    repeat_tolerance,
    seed_band,
)
from mpbench.errors import UserError
from mpbench.results.schema import RunRecord

SAME_RUN = ("batch_size", "seq_len", "steps", "warmup_steps", "lr", "schedule", "min_lr_ratio",
            "lr_warmup_steps", "weight_decay", "betas", "grad_clip", "activation_checkpointing",
            "compile")
"""Train settings two fingerprints must share to be compared."""


@dataclass(frozen=True)
class Departure:
    """Where one quantity differs: its place, both values, the difference and the limits."""

    step: int
    layer: str
    tensor: str
    stat: str
    baseline: float
    current: float
    difference: float
    """Relative to the baseline for magnitudes, absolute for shares; inf for a lost finite."""
    tolerance: float
    band: float | None

    @property
    def where(self) -> str:
        place = self.stat if self.tensor == "step" else f"{self.layer} {self.tensor} {self.stat}"
        return f"step {self.step}, {place}"

    def change_text(self) -> str:
        if math.isnan(self.difference):
            return "on one side only"
        if not math.isfinite(self.difference):
            return "not finite on one side"
        unit = "relative" if relative(self.stat) else "absolute"
        band = f", band {self.band:.3g}" if self.band is not None else ", no FP32 band"
        return f"{self.difference:.3g} {unit} (tolerance {self.tolerance:.3g}{band})"

    def text(self) -> str:
        """'step 2, blocks.0.mlp.fc gradient amax: 0.004 → 0.00404 (0.01 relative (...))'."""
        return (f"{self.where}: {value_text(self.baseline)} → {value_text(self.current)} "
                f"({self.change_text()})")


def value_text(value: float) -> str:
    return f"{value:.7g}" if math.isfinite(value) else str(value)


def place_text(dep: Departure | None) -> str:
    return "-" if dep is None else dep.text()


@dataclass
class RecipeComparison:
    model: str
    recipe: str
    level: Level
    first_change: Departure | None = None
    first_beyond: Departure | None = None
    changed: int = 0
    compared: int = 0
    band_use: float = 0.0
    """Largest |difference| / band over the changed quantities that have a band."""
    unbanded: int = 0
    """Changed quantities without an FP32 counterpart (judged by the tolerance only)."""
    one_sided: int = 0
    """Quantities on one side only (a layer or FP8 operand the other run does not have)."""
    reason: str | None = None
    """Why the current side has no usable fingerprint (failed, diverged)."""
    option_changes: list[tuple[str, Any, Any]] = field(default_factory=list)
    baseline: Fingerprint | None = None
    current: Fingerprint | None = None

    def detail(self) -> str:
        """How much changed, how close to the band, and the recipe settings that differ."""
        if self.reason is not None:
            return f"current run: {self.reason}"
        parts = [f"{self.changed} of {self.compared} quantities left the repeat tolerance"]
        if self.band_use and math.isfinite(self.band_use):
            parts.append(f"largest change {self.band_use:.2%} of its band")
        if self.unbanded:
            parts.append(f"{self.unbanded} shares or values without an FP32 band")
        if self.one_sided:
            parts.append(f"{self.one_sided} quantities on one side only (layers differ)")
        if self.option_changes:
            parts.append("recipe options: " + ", ".join(f"{k} {b} → {c}"
                                                        for k, b, c in self.option_changes))
        return "; ".join(parts)


@dataclass
class FingerprintComparison:
    baseline: str
    current: str
    recipes: list[RecipeComparison]
    tolerance: RepeatTolerance
    band_seeds: list[int]
    software: list[tuple[str, Any, Any]]
    only_baseline: list[str] = field(default_factory=list)
    only_current: list[str] = field(default_factory=list)

    @property
    def level(self) -> Level:
        return max((r.level for r in self.recipes), key=LEVELS.index, default="identical")

    @property
    def exit_code(self) -> int:
        return 1 if self.level == "beyond-seed-band" else 0

    def headline(self) -> str:
        worst = [r for r in self.recipes if r.level == self.level]
        names = ", ".join(f"{r.recipe}" for r in worst)
        text = {"identical": "numerics identical to the baseline",
                "within-repeat-tolerance": "numerics within the repeat tolerance",
                "inside-seed-band": f"numerics changed inside the FP32 seed band ({names})",
                "beyond-seed-band": f"numerics changed beyond the FP32 seed band ({names})",
                }[self.level]
        first = next((r.first_beyond or r.first_change for r in worst
                      if r.first_beyond or r.first_change), None)
        where = f"; first at {first.where}" if first is not None and self.level in (
            "inside-seed-band", "beyond-seed-band") else ""
        return f"fingerprint: {text}{where} (exit {self.exit_code})"


def check_comparable(base: Fingerprint, cur: Fingerprint) -> None:
    """The two runs must share seed, data, model and training; else one line naming it."""
    what = f"{base.recipe} ({base.model})"
    b, c = base.record, cur.record
    checks: list[tuple[str, Any, Any]] = [
        ("seed", base.result.reference_seed, cur.result.reference_seed),
        ("model dims", b.model_dims, c.model_dims),
        ("data", b.data, c.data),
        ("probe steps", base.result.probe_steps, cur.result.probe_steps),
        *((f"train.{k}", b.train.get(k), c.train.get(k)) for k in SAME_RUN),
    ]
    for name, bv, cv in checks:
        if bv != cv:
            raise UserError(f"fingerprints of {what} differ in {name}: baseline {bv}, current "
                            f"{cv}; compare fingerprints made from the same suite and seed")


def software_of(fp: Fingerprint) -> dict[str, Any]:
    return fp.result.software.model_dump()


def software_changes(base: FingerprintSet, cur: FingerprintSet) -> list[tuple[str, Any, Any]]:
    b = software_of(next(iter(base.main.values())))
    c = software_of(next(iter(cur.main.values())))
    return [(k, b.get(k), c.get(k)) for k in b if b.get(k) != c.get(k)]


def option_changes(base: Fingerprint, cur: Fingerprint) -> list[tuple[str, Any, Any]]:
    b, c = base.record.recipe.get("options") or {}, cur.record.recipe.get("options") or {}
    return [(k, b.get(k), c.get(k)) for k in sorted({*b, *c}) if b.get(k) != c.get(k)]


def compare_one(base: Fingerprint, cur: Fingerprint, tol: RepeatTolerance,
                band: SeedBand) -> RecipeComparison:
    out = RecipeComparison(base.model, base.recipe, "identical", baseline=base, current=cur,
                           option_changes=option_changes(base, cur))
    bv, cv = base.values(), cur.values()
    order = base.order()
    # the step's own order, then the key itself: the same first departure in every process
    for key in sorted(set(bv) | set(cv), key=lambda k: (order.get(k, (k[0], 9, 0, 0)), k)):
        out.compared += 1
        b, c = bv.get(key, math.nan), cv.get(key, math.nan)
        if key not in cv and key[2] == "step":  # a step the current run never reached
            d = math.inf
        elif key not in bv or key not in cv:  # a layer or operand on one side only
            out.one_sided += 1
            out.level = max(out.level, "inside-seed-band", key=LEVELS.index)
            out.first_change = out.first_change or Departure(
                *key, baseline=b, current=c, difference=math.nan, tolerance=0.0, band=None)
            continue
        else:
            d = difference(key[3], b, c)
        if d == 0.0:
            continue
        width = band.for_key(key)
        dep = Departure(*key, baseline=b, current=c, difference=d,
                        tolerance=tol.by_kind.get(kind_of(key[3]), 0.0), band=width)
        if tol.allows(key[3], d):
            out.level = max(out.level, "within-repeat-tolerance", key=LEVELS.index)
            continue
        out.changed += 1
        out.first_change = out.first_change or dep
        if width is None and math.isfinite(d):
            out.unbanded += 1
            out.level = max(out.level, "inside-seed-band", key=LEVELS.index)
            continue
        if width is not None and math.isfinite(d):
            out.band_use = max(out.band_use, d / width if width > 0 else math.inf)
        if math.isfinite(d) and width is not None and d <= width:
            out.level = max(out.level, "inside-seed-band", key=LEVELS.index)
        else:
            out.level = "beyond-seed-band"
            out.first_beyond = out.first_beyond or dep
    return out


def compare_sets(base_records: list[RunRecord], cur_records: list[RunRecord], base_name: str,
                 cur_name: str) -> FingerprintComparison:
    base = fingerprint_set(base_records, base_name)
    cur = fingerprint_set(cur_records, cur_name)
    common = [k for k in base.main if k in cur.main or k in cur.failed]
    if not common:
        raise UserError(f"{cur_name}: no recipe in common with the baseline {base_name} "
                        f"(baseline: {', '.join(sorted(r for _, r in base.main))}; current: "
                        f"{', '.join(sorted(r for _, r in cur.main)) or 'none'})")
    tol = repeat_tolerance(base, cur)
    bands = {model: seed_band(base, model) for model in sorted({m for m, _ in common})}
    recipes = []
    for key in common:
        if key not in cur.main:
            recipes.append(RecipeComparison(key[0], key[1], "beyond-seed-band",
                                            reason=cur.failed[key], baseline=base.main[key]))
            continue
        check_comparable(base.main[key], cur.main[key])
        one = compare_one(base.main[key], cur.main[key], tol, bands[key[0]])
        if key in cur.failed and key not in base.failed:
            one.level, one.reason = "beyond-seed-band", cur.failed[key]
        recipes.append(one)
    seeds = sorted({s for b in bands.values() for s in b.seeds})
    return FingerprintComparison(
        base_name, cur_name, recipes, tol, seeds, software_changes(base, cur),
        only_baseline=sorted(f"{m}/{r}" for m, r in base.main if (m, r) not in common),
        only_current=sorted(f"{m}/{r}" for m, r in cur.main if (m, r) not in base.main))
