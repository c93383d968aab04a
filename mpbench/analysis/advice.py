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
so T(every layer) = T_all, and a layer is advised only when converting it beats keeping it out.
Without T_all (advice stored before it was measured) keep(l) = 0. On gpt-tiny bf16 on a CPU
(2026-12-06) the GEMM gains alone advised keeping 8 of 9 layers out, which measured slower
than bf16 on every layer (1.600 against 1.514 of fp32's step).
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mpbench.analysis.stats import Interval
from mpbench.bench.advisor import LayerTiming

PAY_TOLERANCE = 0.02
"""A layer pays when the recipe saves more than 2% of its baseline GEMM time (timing noise)."""
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
class Advice:
    timings: list[LayerTiming]
    baseline_step_ms: float
    rest_step_ms: float | None
    advised: list[str]
    keep_ms: dict[str, float]
    """What keeping each layer out costs beyond its GEMMs (keep_costs)."""

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
           tolerance: float = PAY_TOLERANCE, all_step_ms: float | None = None) -> Advice:
    """Advised: the layers whose conversion saves more than `tolerance` of their baseline GEMM
    time against keeping them out (GEMM gain plus keep cost)."""
    keep = keep_costs(timings, rest_step_ms, all_step_ms)
    advised = [t.layer.name for t in timings
               if t.gain_ms + keep[t.layer.name] > tolerance * t.baseline.total]
    return Advice(list(timings), baseline_step_ms, rest_step_ms, advised, keep)


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
