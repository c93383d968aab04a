"""The advisor's reasoning over per-layer timings: where a recipe pays, the filter to paste,
the predicted step ratio for every layer and for the advised set, and how a trained check
of the prediction is judged.

Prediction: the advisor measures the baseline step (T_base) and the step under the recipe with
every linear layer kept out of it (T_rest: attention, casts and elementwise work already in the
recipe). Converting a set S of layers then saves their measured GEMM gains:
    T(S) = T_rest - sum of gain(l) for l in S,    predicted ratio = T(S) / T_base.
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


def pays(t: LayerTiming, tolerance: float = PAY_TOLERANCE) -> bool:
    return t.gain_ms > tolerance * t.baseline.total


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


@dataclass(frozen=True)
class Advice:
    timings: list[LayerTiming]
    baseline_step_ms: float
    rest_step_ms: float | None
    advised: list[str]

    @property
    def start_ms(self) -> float:
        return self.rest_step_ms if self.rest_step_ms is not None else self.baseline_step_ms

    def predicted_step_ms(self, names: Sequence[str]) -> float:
        chosen = set(names)
        return self.start_ms - sum(t.gain_ms for t in self.timings if t.layer.name in chosen)

    @property
    def predicted_all(self) -> float:
        return self.predicted_step_ms([t.layer.name for t in self.timings]) / self.baseline_step_ms

    @property
    def predicted_advised(self) -> float:
        return self.predicted_step_ms(self.advised) / self.baseline_step_ms


def advise(timings: Sequence[LayerTiming], baseline_step_ms: float, rest_step_ms: float | None,
           tolerance: float = PAY_TOLERANCE) -> Advice:
    advised = [t.layer.name for t in timings if pays(t, tolerance)]
    return Advice(list(timings), baseline_step_ms, rest_step_ms, advised)


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
