"""Time (and energy) for a recipe to reach FP32's final eval loss: the cost claim.

The target is the baseline's final eval loss of the same seed plus a slack (by default
the equivalence margin: a loss the analysis already counts as the same quality).
The clock is the run's training time at each eval point (record.eval_times_s: summed
step times, warm-up included, the first step with its one-off costs left out, eval and
profiler hooks excluded). Between two eval points
the crossing time is interpolated linearly. Energy, where NVML measured it, is the
measured window's average power times that time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from statistics import median
from typing import Any

from mpbench.analysis.stats import median_ratio
from mpbench.results.payloads import NvmlResult
from mpbench.results.schema import RunRecord


@dataclass
class SeedTime:
    seed: int
    target: float
    reached: bool
    time_s: float | None
    step: float | None
    """Interpolated step at the crossing."""
    energy_j: float | None
    best_loss: float | None
    clock: str
    """'measured' (eval_times_s) or 'estimated' (step x median step time, older records)."""


@dataclass
class TimeToTarget:
    target: str
    seeds: list[SeedTime]
    n: int
    reached: int
    median_time_s: float | None
    median_energy_j: float | None
    time_ratio: float | None = None
    """median time / the baseline's median time (< 1: faster to the same loss)."""
    time_ratio_low: float | None = None
    time_ratio_high: float | None = None
    saving: float | None = None
    """1 - time_ratio: the share of the baseline's time (cost) saved."""
    energy_ratio: float | None = None
    energy_saving: float | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def compare_with(self, base: TimeToTarget) -> None:
        """Fill the ratios against the baseline when every seed on both sides got there."""
        if self.reached < self.n or base.reached < base.n or not self.n or not base.n:
            self.notes.append(f"{self.reached} of {self.n} seeds reached the target; no ratio")
            return
        mine = [s.time_s for s in self.seeds if s.time_s is not None]
        ref = [s.time_s for s in base.seeds if s.time_s is not None]
        ratio = median_ratio(ref, mine)
        if ratio is not None:
            self.time_ratio, self.saving = ratio.value, 1.0 - ratio.value
            if ratio.has_interval:  # enough seeds for an interval
                self.time_ratio_low, self.time_ratio_high = ratio.low, ratio.high
        e_mine = [s.energy_j for s in self.seeds if s.energy_j is not None]
        e_ref = [s.energy_j for s in base.seeds if s.energy_j is not None]
        if e_mine and e_ref and len(e_mine) == self.n and len(e_ref) == base.n:
            self.energy_ratio = median(e_mine) / median(e_ref)
            self.energy_saving = 1.0 - self.energy_ratio


def eval_clock(record: RunRecord) -> tuple[list[tuple[int, float, float]], str]:
    """[(step, loss, train time s)] with repeated steps merged, and how the clock was made."""
    points: dict[int, tuple[float, float]] = {}
    if record.eval_times_s and len(record.eval_times_s) == len(record.eval_curve):
        for (step, loss), t in zip(record.eval_curve, record.eval_times_s, strict=True):
            points[int(step)] = (float(loss), float(t))
        clock = "measured"
    else:
        per_step = median(record.step_times_ms) / 1e3 if record.step_times_ms else None
        if per_step is None:
            return [], "none"
        for step, loss in record.eval_curve:
            points[int(step)] = (float(loss), step * per_step)
        clock = "estimated"
    return [(s, loss, t) for s, (loss, t) in sorted(points.items())], clock


def average_power_w(record: RunRecord) -> float | None:
    nvml = record.result(NvmlResult)
    energy = nvml.energy_j if nvml else None
    if not energy or nvml is None:
        return None
    window = nvml.train_s or nvml.window_s or (
        (record.window_s or 0.0) + record.hook_time_s if record.window_s else None)
    return float(energy) / float(window) if window else None


def crossing(points: list[tuple[int, float, float]], target: float) -> tuple[float, float] | None:
    """(time, step) where the eval loss first reaches `target`, interpolated linearly."""
    prev: tuple[int, float, float] | None = None
    for step, loss, t in points:
        if loss <= target:
            if prev is None or prev[1] == loss:
                return t, float(step)
            frac = (prev[1] - target) / (prev[1] - loss)
            return prev[2] + frac * (t - prev[2]), prev[0] + frac * (step - prev[0])
        prev = (step, loss, t)
    return None


def time_to_target(records: list[RunRecord], targets: dict[int, float],
                   slack: float = 0.0) -> TimeToTarget | None:
    """Time for each record to reach the baseline's final eval loss of the same seed (or,
    for a seed the baseline lacks, the baseline's median final eval loss) plus `slack`.

    Without slack, a recipe equivalent to the baseline misses the exact value about half
    the time by a hair; the analysis passes the equivalence margin as the slack.
    """
    if not targets:
        return None
    fallback = median(targets.values())
    seeds: list[SeedTime] = []
    for r in records:
        points, clock = eval_clock(r)
        if not points:
            continue
        target = targets.get(r.seed, fallback) + slack
        hit = crossing(points, target)
        power = average_power_w(r)
        seeds.append(SeedTime(
            r.seed, target, hit is not None, hit[0] if hit else None, hit[1] if hit else None,
            power * hit[0] if hit and power is not None else None,
            min(loss for _, loss, _ in points), clock,
        ))
    if not seeds:
        return None
    times = [s.time_s for s in seeds if s.time_s is not None]
    energies = [s.energy_j for s in seeds if s.energy_j is not None]
    out = TimeToTarget(
        f"baseline's final eval loss of the same seed + {slack:.4g}", seeds, len(seeds), len(times),
        median(times) if times else None, median(energies) if energies else None,
    )
    if any(s.clock == "estimated" for s in seeds):
        out.notes.append("no eval_times_s in some records: time estimated as step x median step time")
    return out
