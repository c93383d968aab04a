"""Where a recipe's step time went: its measured difference from the baseline, split into parts.

Parts are per-step differences of the tensor_cores profiler's stored buckets (GPU kernel buckets
or CPU operator self times; GEMMs split forward/backward by the stored phases). The difference
is the records' own step times (median of run medians, analysis/stats.py). The profile also
times plain steps (no profiler) just before it, so the rest splits into: `host_gaps` (the
profiled steps' time outside every kernel/operator: host work, launch gaps, idle - a named
part), `profiler_overhead` (CPU only: the recipe's extra recording cost, profiled less plain
steps, which lands inside operators' self times) and `unattributed` (the measured difference
less the plain steps': what the profile's moment cannot account for - other runs, changed load,
sampling noise, whose expected size is `unattributed_noise_ms`). The bars add up to the
measured difference by construction; the rest is always shown. Records without plain steps
fall back to the profiled steps' wall time. README, "Where the time went", has the checks."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from mpbench.analysis.compare import Groups
from mpbench.analysis.stats import Interval, step_time_ratio
from mpbench.analysis.step_parts import (
    GEMM,
    GEMM_BWD,
    GEMM_FWD,
    HOST,
    OVERHEAD,
    PARTS,
    UNATTRIBUTED,
    has_phases,
    step_parts,
)
from mpbench.results.key import ComparisonKey, ConfigKey
from mpbench.results.payloads import TensorCoreResult
from mpbench.results.recipe_card import recipe_card
from mpbench.results.schema import RunRecord

TENSOR_CORES_FIX = ("add `profilers: [tensor_cores]` to the suite (or `mpbench run SUITE "
                    "--trace`) and run it again")

FP8_FAMILIES = frozenset({"fp8", "fp4"})


def baseline_of(family: str) -> str:
    """The recipe a waterfall (and the advisor) compares a recipe of `family` with when the
    records do not say: bf16 for FP8/FP4 recipes, else fp32 (the recipe whose role is
    'baseline')."""
    return "bf16" if family in FP8_FAMILIES else "fp32"


def _baseline_name(family: str, comparison: ComparisonKey, groups: Groups[RunRecord]) -> str:
    """bf16 for FP8/FP4 recipes; else the configuration's recipe whose role is 'baseline'."""
    if family in FP8_FAMILIES:
        return "bf16"
    base = groups.baseline(comparison)
    return base.recipe_id if base is not None else baseline_of(family)



@dataclass(frozen=True)
class Side:
    """One recipe's runs of a configuration: measured step time and per-part time per step."""

    precision: str
    step_ms: float
    """Median of the per-run median step times (measured window, no profiler)."""
    parts_ms: dict[str, float]
    """Median over runs of each part's profiled time per step."""
    runs: int
    profiled_runs: int
    split: bool = True
    """Every profiled run had per-phase times: GEMMs split into forward and backward."""
    profiled_step_ms: float | None = None
    """Median over runs of the profiled steps' wall time per step (None: not stored)."""
    plain_step_ms: float | None = None
    """Median over runs of the median plain step timed before the profile (None: not stored)."""
    window_var_ms2: float | None = None
    """Sampling variance of (measured-window median - plain-steps median), over the runs
    (None: too few steps to tell)."""
    options: str = ""
    """The recipe's options as the suite set them (what an options tag like bf16-4eba52 is)."""

    @property
    def covered_ms(self) -> float:
        return sum(self.parts_ms.values())

    @property
    def matching_step_ms(self) -> float | None:
        """The step the parts are set against: the plain steps of the profile's moment, else
        (older records) the profiled steps' wall time."""
        return self.plain_step_ms if self.plain_step_ms is not None else self.profiled_step_ms

    @property
    def overhead_ms(self) -> float | None:
        """The profiler's own cost per step: profiled less plain steps."""
        if self.plain_step_ms is None or self.profiled_step_ms is None:
            return None
        return self.profiled_step_ms - self.plain_step_ms


@dataclass(frozen=True)
class Waterfall:
    key: ConfigKey
    baseline: Side
    recipe: Side
    ratio: Interval | None
    """recipe step time / baseline step time, with the run-level interval."""
    device_kind: str | None
    numerics_only: bool

    @property
    def delta_ms(self) -> float:
        """Measured step-time difference, recipe minus baseline (negative: faster)."""
        return self.recipe.step_ms - self.baseline.step_ms

    @property
    def parts_ms(self) -> dict[str, float]:
        """Recipe minus baseline per part; one GEMM part where a side has no phases."""
        diff = {p: self.recipe.parts_ms[p] - self.baseline.parts_ms[p] for p in PARTS}
        if self.baseline.split and self.recipe.split:
            return diff
        return {GEMM: diff.pop(GEMM_FWD) + diff.pop(GEMM_BWD), **diff}

    @property
    def matched_delta_ms(self) -> float | None:
        """Recipe minus baseline of the steps matching the parts (Side.matching_step_ms)."""
        b, r = self.baseline.matching_step_ms, self.recipe.matching_step_ms
        return None if b is None or r is None else r - b

    @property
    def overhead_ms(self) -> float | None:
        """On a CPU, the named parts' correction for the profiler's own cost: minus the
        recipe's extra overhead per step (profiled less plain steps), which lands inside the
        operators' self times (a child's recording cost is its parent's self time; module
        docstring). None on a GPU (kernel times are the device's own) or without plain steps."""
        b, r = self.baseline.overhead_ms, self.recipe.overhead_ms
        if self.device_kind != "cpu" or b is None or r is None:
            return None
        return -(r - b)

    @property
    def host_ms(self) -> float | None:
        """The matching steps' time outside every kernel/operator, recipe minus baseline: host
        work, launch gaps, idle (None when a side stored no step time with its profile)."""
        matched = self.matched_delta_ms
        if matched is None:
            return None
        return matched - sum(self.parts_ms.values()) - (self.overhead_ms or 0.0)

    @property
    def attributed_ms(self) -> float:
        """The named parts: operators/kernels net of the profiler's overhead, and host time."""
        return sum(self.parts_ms.values()) + (self.overhead_ms or 0.0) + (self.host_ms or 0.0)

    @property
    def unattributed_ms(self) -> float:
        """The measured difference less the named parts: with plain steps stored, the measured
        window's difference against theirs."""
        return self.delta_ms - self.attributed_ms

    @property
    def unattributed_noise_ms(self) -> float | None:
        """Two standard errors of the unattributed bar from the steps' own spread (the two
        medians of each side's runs); drift between the two moments comes on top. None
        without plain steps of at least 3 per run."""
        b, r = self.baseline.window_var_ms2, self.recipe.window_var_ms2
        return None if b is None or r is None else 2.0 * math.sqrt(b + r)

    @property
    def unattributed_within_noise(self) -> bool | None:
        """The unattributed bar is no larger than its sampling noise (None: noise unknown)."""
        noise = self.unattributed_noise_ms
        return None if noise is None else abs(self.unattributed_ms) <= noise

    @property
    def bars(self) -> list[tuple[str, float]]:
        """Every part, the overhead correction, host time and the rest, in order: they sum to
        delta_ms."""
        overhead, host = self.overhead_ms, self.host_ms
        return [*self.parts_ms.items(),
                *([(OVERHEAD, overhead)] if overhead is not None else []),
                *([(HOST, host)] if host is not None else []),
                (UNATTRIBUTED, self.unattributed_ms)]

    @property
    def attributed_fraction(self) -> float | None:
        """The named parts over the measured difference (1.0: nothing unattributed)."""
        if self.delta_ms == 0:
            return None
        return self.attributed_ms / self.delta_ms


def _side(precision: str, runs: Sequence[RunRecord]) -> Side | None:
    timed = [r for r in runs if r.step_times_ms]
    pairs = [(r, p) for r in timed if (p := r.result(TensorCoreResult)) is not None
             and p.buckets and p.bucket_time_us]
    if not pairs:
        return None
    profiled = [p for _, p in pairs]
    per_run = [step_parts(p) for p in profiled]
    parts = {part: statistics.median(x[part] for x in per_run) for part in PARTS}
    step = statistics.median(statistics.median(r.step_times_ms) for r in timed)
    options = recipe_card(timed[0]).options
    plain = [(r.step_times_ms, [us / 1000.0 for us in p.plain_step_us]) for r, p in pairs]
    return Side(precision, step, parts, len(timed), len(profiled),
                all(has_phases(p) for p in profiled),
                profiled_step_ms=_per_step([p.wall_time_us for p in profiled], profiled),
                plain_step_ms=(statistics.median(statistics.median(ms) for _, ms in plain)
                               if all(ms for _, ms in plain) else None),
                window_var_ms2=_window_variance(plain),
                options=", ".join(f"{k}: {v}" for k, v in options.items()))


def _median_variance(times: Sequence[float]) -> float | None:
    """Sampling variance of the median of `times` (ms^2): (1.2533 s)^2 / n with s the robust
    standard deviation (1.4826 MAD), so a stray slow step does not swell it."""
    if len(times) < 3:
        return None
    mid = statistics.median(times)
    spread = 1.4826 * statistics.median(abs(t - mid) for t in times)
    return (1.2533 * spread) ** 2 / len(times)


def _window_variance(runs: list[tuple[list[float], list[float]]]) -> float | None:
    """Variance of (measured median - plain median) per run, over the runs' median (taken as
    their mean: / number of runs); None unless every run has both."""
    each = [(_median_variance(window), _median_variance(plain)) for window, plain in runs]
    if not each or any(w is None or p is None for w, p in each):
        return None
    return sum(w + p for w, p in each if w is not None and p is not None) / len(each) ** 2


def _per_step(times_us: list[float | None], profiled: list[TensorCoreResult]) -> float | None:
    """Median over runs of a stored profile time per step (ms); None unless every run has it."""
    if any(t is None for t in times_us):
        return None
    return statistics.median(t / (p.steps or 1) / 1000.0
                             for t, p in zip(times_us, profiled, strict=True) if t is not None)


def waterfall(base_runs: Sequence[RunRecord], new_runs: Sequence[RunRecord]) -> Waterfall | None:
    """The waterfall of two sets of runs of one configuration, None without profiled runs."""
    if not base_runs or not new_runs:
        return None
    base = _side(base_runs[0].config_key.recipe_id, base_runs)
    new = _side(new_runs[0].config_key.recipe_id, new_runs)
    if base is None or new is None:
        return None
    ratio = step_time_ratio([r.step_times_ms for r in base_runs if r.step_times_ms],
                            [r.step_times_ms for r in new_runs if r.step_times_ms])
    prof = new_runs[0].result(TensorCoreResult)
    return Waterfall(new_runs[0].config_key, base, new, ratio,
                     prof.device_kind if prof and prof.buckets else None,
                     recipe_card(new_runs[0]).numerics_only)


@dataclass(frozen=True)
class Missing:
    """A recipe without a waterfall, and why."""

    key: ConfigKey
    reason: str


def waterfalls(records: Sequence[RunRecord], baseline: str | None = None
               ) -> tuple[list[Waterfall], list[Missing]]:
    """Every recipe against its baseline (`baseline`; else bf16 for FP8/FP4 recipes and the
    recipe whose role is 'baseline' for the rest), per configuration; the recipes that have none
    say why."""
    groups = Groups([r for r in records if r.status == "ok"])
    found: list[Waterfall] = []
    missing: list[Missing] = []
    for g in groups:
        key, runs = g.key, g.ok
        base_name = baseline or _baseline_name(g.family or runs[0].precision, key.comparison,
                                               groups)
        if key.recipe_id == base_name:
            continue
        base_key: ComparisonKey = key.comparison
        base_runs = groups.ok(base_key.with_recipe_id(base_name))
        if not base_runs:
            missing.append(Missing(key, f"no {base_name} runs of {base_key.label} to compare with"))
            continue
        w = waterfall(base_runs, runs)
        if w is None:
            missing.append(Missing(key, f"no tensor_cores profile in the {key.recipe_id} or "
                                        f"{base_name} runs; {TENSOR_CORES_FIX}"))
        else:
            found.append(w)
    return found, missing


def has_profiles(records: Sequence[RunRecord]) -> bool:
    return any((p := r.result(TensorCoreResult)) is not None and bool(p.buckets)
               for r in records if r.status == "ok")
