"""Compare two numerics fingerprints: identical, within the repeat tolerance, changed inside
the FP32 seed band, or changed beyond it; where the change first showed, and what differs.

A fingerprint set (`mpbench fingerprint run`) holds, per recipe, the fingerprint and its
repeats, and FP32 fingerprints of other seeds. Two tolerances come from it, never from a guess:
- the repeat tolerance: per kind of quantity, the largest difference between repeats of the
  same code on the same machine (0 on a CPU with deterministic kernels);
- the seed band: per magnitude (loss, grad norm, each layer's amax; an FP8 scale takes its
  layer's amax band), how far FP32 moves between seeds: (max - min) / median.
A quantity "left the tolerance" when baseline and current differ by more than the repeat
tolerance; the change "matters" when a magnitude moved further than its band, a finite value
became inf/NaN, or a run that trained now fails. Underflow and overflow shares locate and
explain a change but never make it matter on their own: they count elements near a
threshold, and a tensor where no seed had any has a band of zero, so one flipped element
would fail the gate; what an overflow does shows in the amax (inf) and the loss. Quantities are ordered as the step computes
them: activations in forward order (an FP8 layer's input and weight scales before its
output), the loss, gradients as they arrive (the grad_output scale after the gradient it
scales), the gradient norm; ties in a fixed order, so every process names the same place.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal

from mpbench.analysis.compare import Groups
from mpbench.errors import UserError
from mpbench.results.payloads import FingerprintResult
from mpbench.results.schema import RunRecord

Level = Literal["identical", "within-repeat-tolerance", "inside-seed-band", "beyond-seed-band"]
LEVELS: tuple[Level, ...] = ("identical", "within-repeat-tolerance", "inside-seed-band",
                             "beyond-seed-band")
Key = tuple[int, str, str, str]
"""(step, layer, tensor, stat): layer '' and tensor 'step' for the loss and the grad norm."""
KINDS = ("loss", "grad_norm", "amax", "share", "scale")
TINY = 1e-30


def kind_of(stat: str) -> str:
    """The family a stat's tolerance is measured for."""
    if stat in ("loss", "grad_norm", "amax"):
        return stat
    return "scale" if stat.startswith("scale:") else "share"


def relative(stat: str) -> bool:
    """Magnitudes compare relatively; shares (already fractions) absolutely."""
    return kind_of(stat) != "share"


def as_float(value: float | str | None) -> float:
    return float("nan") if value is None else float(value)


@dataclass(frozen=True)
class Fingerprint:
    """One record's fingerprint with the identity it is matched and checked by."""

    record: RunRecord
    result: FingerprintResult

    @property
    def recipe(self) -> str:
        """The recipe name with the options tag of its run id (fp8-emulated-1a2b3c)."""
        return self.record.config_key.recipe_id

    @property
    def model(self) -> str:
        return self.record.model

    def values(self) -> dict[Key, float]:
        return quantities(self.result)

    def order(self) -> dict[Key, tuple[int, int, int, int]]:
        return ordering(self.result)


def quantities(fp: FingerprintResult) -> dict[Key, float]:
    out: dict[Key, float] = {}
    for s in fp.steps:
        out[(s.step, "", "step", "loss")] = as_float(s.loss)
        if s.grad_norm is not None:
            out[(s.step, "", "step", "grad_norm")] = as_float(s.grad_norm)
    for t in fp.tensors:
        out[(t.step, t.layer, t.tensor, "amax")] = as_float(t.amax)
        for f, v in t.underflow.items():
            out[(t.step, t.layer, t.tensor, f"underflow:{f}")] = v
        for f, v in t.overflow.items():
            out[(t.step, t.layer, t.tensor, f"overflow:{f}")] = v
    for c in fp.scales:
        out[(c.step, c.layer, "fp8", f"scale:{c.operand}")] = as_float(c.scale)
    return out


def ordering(fp: FingerprintResult) -> dict[Key, tuple[int, int, int, int]]:
    """Sort keys in the order the step computes the quantities (see the module docstring)."""
    pos: dict[tuple[int, str, str], int] = {(t.step, t.layer, t.tensor): t.order
                                            for t in fp.tensors}
    out: dict[Key, tuple[int, int, int, int]] = {}
    for key in quantities(fp):
        step, layer, tensor, stat = key
        sub = 0 if stat == "amax" else 1
        if tensor == "step":
            out[key] = (step, 1 if stat == "loss" else 3, 0, 0)
        elif tensor == "fp8":  # input/weight scales act before the layer's output exists;
            # the grad_output scale applies to the layer's output gradient, after it arrives
            back = stat == "scale:grad_output"
            order = pos.get((step, layer, "gradient" if back else "activation"), 10**6)
            out[key] = (step, 2 if back else 0, order, 2 if back else -1)
        else:
            out[key] = (step, 0 if tensor == "activation" else 2, pos[(step, layer, tensor)], sub)
    return out


def difference(stat: str, a: float, b: float) -> float:
    """|a - b|, relative to |a| for magnitudes; inf when exactly one side is not finite."""
    if (math.isnan(a) and math.isnan(b)) or (a == b):
        return 0.0
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    return abs(a - b) / max(abs(a), TINY) if relative(stat) else abs(a - b)


# -- the set of one side ---------------------------------------------------------------------
@dataclass
class FingerprintSet:
    """One side's fingerprints: per (model, recipe) the fingerprint and its repeats; the FP32
    seed band's members; runs that did not produce a fingerprint (with why)."""

    where: str
    main: dict[tuple[str, str], Fingerprint] = field(default_factory=dict)
    repeats: dict[tuple[str, str], list[Fingerprint]] = field(default_factory=dict)
    band: dict[str, list[Fingerprint]] = field(default_factory=dict)
    """By model: the FP32 fingerprints of every seed (the reference seed's included)."""
    failed: dict[tuple[str, str], str] = field(default_factory=dict)


def recipe_of(r: RunRecord) -> tuple[str, str]:
    """What a fingerprint is grouped and matched by: model and recipe (with its options tag).
    Not the whole ConfigKey: two sides that differ in seed, data or a training setting are
    refused by name (fingerprint_compare.check_comparable), not silently left unmatched."""
    return (r.model, r.config_key.recipe_id)


def fingerprint_set(records: list[RunRecord], where: str) -> FingerprintSet:
    """Sort one side's records. The fingerprint's seed is the one `fingerprint run` stored as
    the reference; records made by a suite's own seeds (profilers: [fingerprint] in `mpbench
    run`) take the smallest seed as the fingerprint and FP32's other seeds as the band."""
    out = FingerprintSet(where)
    refs = {res.reference_seed for r in records
            if (res := r.result(FingerprintResult)) is not None}
    reference = min(refs, default=0)
    for g in Groups(records, by=recipe_of):
        key = recipe_of(g.records[0])
        # the seed band: the baseline recipe (strict FP32, Recipe.role) without options
        in_band = g.role == "baseline" and g.recipe_id == g.records[0].precision
        for r in g.records:
            result = r.result(FingerprintResult)
            if result is None:
                if FingerprintResult.name in r.profiler_results or r.status != "ok":
                    out.failed.setdefault(key, f"{r.status}: {r.reason or 'no fingerprint'}")
                continue
            fp = Fingerprint(r, result)
            if r.status != "ok":
                out.failed.setdefault(key, f"{r.status}: {r.reason}")
            if result.seed == reference:
                if result.repeat == 0:
                    out.main[key] = fp
                else:
                    out.repeats.setdefault(key, []).append(fp)
            if in_band and result.repeat == 0:
                out.band.setdefault(r.model, []).append(fp)
    if not out.main:
        raise UserError(f"{where}: no fingerprints (records with the 'fingerprint' profiler); "
                        f"make them with `mpbench fingerprint run SUITE -o {where}`")
    return out


# -- tolerances --------------------------------------------------------------------------------
@dataclass(frozen=True)
class RepeatTolerance:
    """Per kind of quantity, the largest difference seen between same-code repeats."""

    by_kind: dict[str, float]
    pairs: int
    """Repeat pairs measured (0: none; any difference then leaves the tolerance)."""

    def allows(self, stat: str, diff: float) -> bool:
        return diff <= self.by_kind.get(kind_of(stat), 0.0)


def repeat_tolerance(*sets: FingerprintSet) -> RepeatTolerance:
    worst = dict.fromkeys(KINDS, 0.0)
    pairs = 0
    for s in sets:
        for key, main in s.main.items():
            base = main.values()
            for rep in s.repeats.get(key, []):
                pairs += 1
                for q, v in rep.values().items():
                    if q in base:
                        d = difference(q[3], base[q], v)
                        if math.isfinite(d):
                            worst[kind_of(q[3])] = max(worst[kind_of(q[3])], d)
    return RepeatTolerance(worst, pairs)


@dataclass(frozen=True)
class SeedBand:
    """How far FP32 moves between seeds, per magnitude (see the module docstring)."""

    seeds: list[int]
    width: dict[Key, float]

    def for_key(self, key: Key) -> float | None:
        step, layer, tensor, stat = key
        if tensor == "fp8":  # a scale is fp8_max / amax: its band is the amax's
            operand = stat.removeprefix("scale:")
            tensor = "gradient" if operand == "grad_output" else "activation"
            stat = "amax"
        return self.width.get((step, layer, tensor, stat))


def seed_band(s: FingerprintSet, model: str) -> SeedBand:
    members = s.band.get(model, [])
    seeds = sorted({m.result.seed for m in members})
    if len(seeds) < 2:
        raise UserError(f"{s.where}: no FP32 seed band for model {model} (FP32 fingerprints of "
                        f"2+ seeds, found {len(seeds)}); make the baseline with `mpbench "
                        "fingerprint run SUITE`, which adds them")
    by_key: dict[Key, list[float]] = defaultdict(list)
    for m in members:
        for q, v in m.values().items():
            if math.isfinite(v):
                by_key[q].append(v)
    width = {q: (max(vals) - min(vals)) / max(abs(statistics.median(vals)), TINY)
             for q, vals in by_key.items() if len(vals) > 1 and relative(q[3])}
    return SeedBand(seeds, width)
