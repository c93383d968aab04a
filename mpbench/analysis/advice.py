"""The advisor's reasoning over per-layer timings: where a recipe pays, the filter to paste,
the predicted step ratio for every layer and for the advised set, and how a trained check
of the prediction is judged.

Prediction: the advisor measures the baseline step (T_base), the step under the recipe with
every linear layer kept out of it (T_rest: attention, casts and elementwise work already in the
recipe) and, where it can, the step under the recipe on every layer (T_all). Keeping a layer
out costs more than its GEMMs: under autocast its input and output are cast at the boundary.
That cost is what the measured steps do not explain by the GEMM gains,
    keep = (T_rest - T_all) - sum of gain(l) over every layer,
shared among the layers by their activation size (in + out features). Converting a set S then
saves each layer's GEMM gain and its keep cost:
    T(S) = T_rest - sum of (gain(l) + keep(l)) for l in S,    predicted ratio = T(S) / T_base,
so T(every layer) = T_all.

Decision: every layer is advised unless keeping some out is predicted to save more than the
advisor's own measurement uncertainty. The candidates are the layers whose conversion costs
(gain + keep below zero), taken by GEMM shape (layers of a shape share their timing); for a
candidate set K, the saving is B(K) = -sum of (gain(l) + keep(l)) over K and the uncertainty
U(K) = sqrt(step_noise^2 + (sum of gain half-widths over K)^2), step_noise being the half-width
of the measured T_rest - T_all (paired steps): a subset's step is a whole step, and its
prediction is no surer than one. The K with the largest B - U is kept out when B > U. On
gpt-tiny bf16 on a CPU (2026-12-06) the rule before it kept 2 of 9 layers out for a predicted
0.14 ms per step, inside the step noise; trained, that subset measured slower than every layer.
"""

from __future__ import annotations

import fnmatch
import itertools
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from mpbench.analysis.stats import Interval
from mpbench.bench.advisor import LayerTiming, median_halfwidth

PAY_TOLERANCE = 0.02
"""Schema 1's rule (a layer paid when it saved 2% of its GEMM time), for advice stored with it."""
MAX_GROUPS = 12
"""Losing shape groups beyond which the kept-out set is chosen greedily, not by trying all."""
PREDICTION_TOLERANCE = 0.10
"""A predicted step ratio more than 10% from the measured one is a miss (the issue's target)."""

AUTOCAST_FAMILIES = frozenset({"bf16", "fp16"})
CONVERTER_FAMILIES = frozenset({"fp8", "fp4"})


def refusal(name: str, family: str, numerics_only: bool, keeps_fp32: bool,
            baseline: str, unavailable: str | None) -> str | None:
    """Why the advisor gives no speed advice for this recipe here, or None."""
    if numerics_only:
        return (f"recipe {name} is numerics only on this device (emulated): its speed is not "
                "the real format's, so there is no speed advice; run it on hardware with the "
                "format (an FP8 GPU) for advice")
    if unavailable is not None:
        return f"recipe {name} cannot run here: {unavailable}"
    if name == baseline:
        return f"recipe {name} is the baseline; name a candidate recipe (bf16, fp16, fp8-...)"
    if family in CONVERTER_FAMILIES or (family in AUTOCAST_FAMILIES and keeps_fp32):
        return None
    return (f"recipe {name} has no per-layer choice (it casts the whole model or changes no "
            "GEMM dtype); the advisor advises autocast (bf16, fp16) and FP8/FP4 recipes")


def compress(names: Sequence[str], all_names: Sequence[str]) -> list[str]:
    """`names` as globs: blocks.0.mlp.fc ... blocks.N.mlp.fc become blocks.*.mlp.fc where that
    glob matches exactly those of `all_names` that are in `names`."""
    chosen = set(names)
    out: list[str] = []
    for name in names:
        glob = re.sub(r"(?<=\.)\d+(?=\.)", "*", name)
        matched = {n for n in all_names if fnmatch.fnmatchcase(n, glob)}
        use = glob if glob != name and matched <= chosen else name
        if use not in out:
            out.append(use)
    return out


def filter_for(recipe: str, family: str, all_names: Sequence[str], advised: Sequence[str],
               options: dict[str, Any]) -> tuple[str, Any, str]:
    """(option, value, the suite's precision entry as YAML) that converts only `advised`."""
    if family in CONVERTER_FAMILIES:
        option = "fp8_filter"
        value: Any = {"include": compress(advised, all_names), "exclude": []}
        inner = (f"{{include: [{', '.join(value['include'])}], exclude: []}}")
    else:
        option = "keep_fp32"
        value = compress([n for n in all_names if n not in set(advised)], all_names)
        inner = f"[{', '.join(value)}]"
    others = "".join(f", {k}: {v}" for k, v in options.items() if k != option)
    return option, value, f"- {{name: {recipe}, options: {{{option}: {inner}{others}}}}}"


def nothing_converted(family: str, all_names: Sequence[str]) -> tuple[str, Any]:
    """The recipe option that keeps every linear layer out of the recipe (the T_rest step)."""
    if family in CONVERTER_FAMILIES:
        return "fp8_filter", {"include": [], "exclude": ["*"]}
    return "keep_fp32", list(all_names)


def keep_costs(timings: Sequence[LayerTiming], rest_step_ms: float | None,
               all_step_ms: float | None) -> dict[str, float]:
    """ms per step that keeping each layer out of the recipe costs beyond its GEMMs (module
    docstring); zero where T_rest or T_all was not measured."""
    if rest_step_ms is None or all_step_ms is None or not timings:
        return {t.layer.name: 0.0 for t in timings}
    unexplained = (rest_step_ms - all_step_ms) - sum(t.gain_ms for t in timings)
    size = {t.layer.name: t.layer.in_features + t.layer.out_features for t in timings}
    total = sum(size.values())
    return {name: unexplained * n / total for name, n in size.items()}


@dataclass(frozen=True)
class Decision:
    """Whether to keep some layers out of the recipe: the best candidate set, what keeping it
    out is predicted to save against every layer converted, and the uncertainty it must clear
    (module docstring)."""

    kept_out: list[str]
    """The candidate set K (layers whose conversion costs); empty: none does."""
    saving_ms: float
    """B(K): ms per step keeping K out saves against converting every layer."""
    step_noise_ms: float
    """Half-width of the measured whole-step difference (T_rest - T_all, paired steps)."""
    layer_noise_ms: float
    """Sum of the half-widths of K's GEMM gains."""

    @property
    def uncertainty_ms(self) -> float:
        return math.hypot(self.step_noise_ms, self.layer_noise_ms)

    @property
    def keeps_out(self) -> bool:
        """K is kept out: its saving is larger than the uncertainty."""
        return bool(self.kept_out) and self.saving_ms > self.uncertainty_ms

    def text(self, n_layers: int) -> str:
        """One line for the CLI and the report."""
        if not math.isfinite(self.uncertainty_ms):
            return ("every layer is advised: too few steps or repetitions to measure the "
                    "noise a kept-out set must beat (time 3 or more)")
        if not self.kept_out:
            return (f"every layer is advised: converting each saves against keeping it out "
                    f"(uncertainty {self.uncertainty_ms:.3f} ms per step)")
        what = (f"keeping {len(self.kept_out)} of {n_layers} layers out is predicted to save "
                f"{self.saving_ms:.3f} ms per step against every layer, uncertainty "
                f"{self.uncertainty_ms:.3f} ms (whole step {self.step_noise_ms:.3f}, layers "
                f"{self.layer_noise_ms:.3f})")
        return what + (": kept out" if self.keeps_out
                       else ": within it, so every layer is advised")


def _candidates(groups: list[tuple[list[str], float, float]]
                ) -> Iterator[tuple[list[str], float, float]]:
    """(names, saving, layer noise) of every union of losing groups (greedily past
    MAX_GROUPS: the groups by saving over noise, added one by one)."""
    if len(groups) > MAX_GROUPS:
        ranked = sorted(groups, key=lambda g: -g[1] / g[2] if g[2] > 0 else -math.inf)
        chosen: list[tuple[list[str], float, float]] = []
        for g in ranked:
            chosen.append(g)
            yield ([n for c in chosen for n in c[0]], sum(c[1] for c in chosen),
                   sum(c[2] for c in chosen))
        return
    for size in range(1, len(groups) + 1):
        for combo in itertools.combinations(groups, size):
            yield ([n for c in combo for n in c[0]], sum(c[1] for c in combo),
                   sum(c[2] for c in combo))


def decide(timings: Sequence[LayerTiming], keep: dict[str, float],
           step_noise_ms: float) -> Decision:
    """The set of layers to keep out of the recipe, by the uncertainty rule (module
    docstring): the losing shape groups' union with the largest saving less uncertainty."""
    groups: dict[tuple[int, int], tuple[list[str], float, float]] = {}
    for t in timings:
        saving = t.gain_ms + keep.get(t.layer.name, 0.0)
        if saving >= 0:
            continue
        names, total, noise = groups.get(t.layer.shape, ([], 0.0, 0.0))
        groups[t.layer.shape] = ([*names, t.layer.name], total - saving, noise + t.gain_hw_ms)
    best = Decision([], 0.0, step_noise_ms, 0.0)
    for names, saving, noise in _candidates(list(groups.values())):
        d = Decision(names, saving, step_noise_ms, noise)
        if not best.kept_out or d.saving_ms - d.uncertainty_ms > (
                best.saving_ms - best.uncertainty_ms):
            best = d
    return best


def precise_enough(timings: Sequence[LayerTiming], step_noise_ms: float,
                   rest_step_ms: float | None = None, all_step_ms: float | None = None) -> bool:
    """The layer timings need no more rounds: the layers that may lose (saving less its
    half-width below zero: the only candidates to keep out) have a summed uncertainty within
    the whole step's, which more layer rounds cannot reduce."""
    keep = keep_costs(timings, rest_step_ms, all_step_ms)
    return sum(t.gain_hw_ms for t in timings
               if t.gain_ms + keep[t.layer.name] - t.gain_hw_ms < 0) <= step_noise_ms


def first_steps(most: int) -> int:
    """Whole steps the advisor times first: half of `most`, at least 5 (a spread from fewer
    is itself too noisy to decide on); the rest only where the decision needs them."""
    return min(most, max(5, most // 2))


def needs_more_steps(d: Decision, taken: int, most: int) -> bool:
    """Time the rest of the steps: a kept-out set could clear its uncertainty once the
    whole-step noise shrinks as the square root of the steps, or cleared it on the first
    steps and is confirmed on all of them before it is advised."""
    if not d.kept_out or taken >= most:
        return False
    return d.saving_ms > math.hypot(d.step_noise_ms * math.sqrt(taken / most), d.layer_noise_ms)


def step_noise(rest_ms: Sequence[float], all_ms: Sequence[float]) -> float:
    """Half-width of the median of the paired step differences T_rest - T_all (the probe runs
    them interleaved, step i of each on the same batch)."""
    return median_halfwidth([r - a for r, a in zip(rest_ms, all_ms, strict=True)])


@dataclass(frozen=True)
class Advice:
    timings: list[LayerTiming]
    baseline_step_ms: float
    rest_step_ms: float | None
    advised: list[str]
    keep_ms: dict[str, float]
    """What keeping each layer out costs beyond its GEMMs (keep_costs)."""
    decision: Decision

    @property
    def start_ms(self) -> float:
        return self.rest_step_ms if self.rest_step_ms is not None else self.baseline_step_ms

    def saving_ms(self, t: LayerTiming) -> float:
        """ms per step that converting this layer saves against keeping it out."""
        return t.gain_ms + self.keep_ms.get(t.layer.name, 0.0)

    def predicted_step_ms(self, names: Sequence[str]) -> float:
        chosen = set(names)
        return self.start_ms - sum(self.saving_ms(t) for t in self.timings
                                   if t.layer.name in chosen)

    @property
    def predicted_all(self) -> float:
        return self.predicted_step_ms([t.layer.name for t in self.timings]) / self.baseline_step_ms

    @property
    def predicted_advised(self) -> float:
        return self.predicted_step_ms(self.advised) / self.baseline_step_ms


def advise(timings: Sequence[LayerTiming], baseline_step_ms: float, rest_step_ms: float | None,
           all_step_ms: float | None = None, step_noise_ms: float = 0.0) -> Advice:
    """Advised: every layer, less the decision's kept-out set where keeping it out saves
    more than the uncertainty."""
    keep = keep_costs(timings, rest_step_ms, all_step_ms)
    decision = decide(timings, keep, step_noise_ms)
    out = set(decision.kept_out) if decision.keeps_out else set()
    advised = [t.layer.name for t in timings if t.layer.name not in out]
    return Advice(list(timings), baseline_step_ms, rest_step_ms, advised, keep, decision)


@dataclass(frozen=True)
class Check:
    """A predicted ratio against a measured one."""

    predicted: float
    measured: Interval | None

    @property
    def error(self) -> float | None:
        """predicted / measured - 1."""
        return self.predicted / self.measured.value - 1 if self.measured else None

    def verdict(self, tolerance: float = PREDICTION_TOLERANCE) -> str:
        """hit: within `tolerance` of the measured ratio; miss: further off and outside the
        measured run-level interval; inconclusive: further off but inside an interval that
        wide (the runs cannot tell); not measured."""
        m, err = self.measured, self.error
        if m is None or err is None:
            return "not measured"
        if abs(err) <= tolerance:
            return "hit"
        inside = m.low is not None and m.high is not None and m.low <= self.predicted <= m.high
        return "inconclusive" if inside else "miss"

    def miss(self, tolerance: float = PREDICTION_TOLERANCE) -> bool:
        return self.verdict(tolerance) == "miss"


def slower_beyond_interval(advised: Interval | None, every: Interval | None) -> bool:
    """The advised set measured slower than every layer converted, beyond both intervals."""
    if advised is None or every is None or advised.low is None or every.high is None:
        return False
    return advised.low > every.high and not math.isclose(advised.low, every.high)
