"""The advisor's stored result (`mpbench advise`): per-layer GEMM timings, the advised filter,
the predicted step ratios and, after --verify, the measured ones and the prediction error.

One JSON file per model and recipe under <results>/advice/, written atomically; the report and
the CLI read it through this typed model. Ratios are step time recipe / baseline (below 1:
the recipe is faster), the convention of analysis/stats.step_time_ratio.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from mpbench.config import Strict as _Strict
from mpbench.config.errors import first_error
from mpbench.errors import UserError
from mpbench.results.output import write_output

ADVICE_DIR = "advice"
ADVICE_SCHEMA = 2
"""2: the uncertainty rule's figures (step_noise_ms, uncertainty_ms, ...); 1 loads as is."""


class LayerAdvice(_Strict):
    name: str
    in_features: int
    out_features: int
    baseline_ms: tuple[float, float, float]
    """Forward, input-gradient and weight-gradient GEMM, ms per step, in the baseline."""
    recipe_ms: tuple[float, float, float]
    """The same three through the recipe's module or autocast (casts, scales included)."""
    gain_ms: float
    """Baseline minus recipe, all three GEMMs: ms per step saved (negative: lost)."""
    pays: bool
    keep_ms: float = 0.0
    """What keeping this layer out of the recipe costs beyond its GEMMs (boundary casts),
    ms per step (analysis/advice.keep_costs); 0 in advice stored before it was measured."""
    gain_hw_ms: float | None = None
    """Half-width of gain_ms from the paired repetitions (bench/advisor.median_halfwidth);
    None: too few repetitions, or advice stored before schema 2."""


class MeasuredRatio(_Strict):
    """A measured step-time ratio with its run-level interval (analysis/stats.Interval)."""

    value: float
    low: float | None = None
    high: float | None = None
    n_base_runs: int
    n_new_runs: int
    basis: str


class Verification(_Strict):
    """Trained runs of the baseline, the recipe on every layer and on the advised layers."""

    results_dir: str
    repeats: int
    measured_all: MeasuredRatio | None = None
    measured_advised: MeasuredRatio | None = None
    error_all: float | None = None
    """predicted / measured - 1, recipe on every layer."""
    error_advised: float | None = None
    tolerance: float
    """A prediction off by more than this (relative) is a miss."""
    miss_all: bool = False
    miss_advised: bool = False
    verdict_all: str = "not measured"
    """hit, miss, inconclusive (off by more than the tolerance, inside a wide interval) or
    not measured (analysis/advice.Check.verdict)."""
    verdict_advised: str = "not measured"
    advised_slower_than_all: bool = False
    """The advised set measured slower than the recipe on every layer beyond the intervals."""
    note: str = ""


class AdviceRecord(_Strict):
    schema_version: int = ADVICE_SCHEMA
    kind: Literal["advice"] = "advice"
    model: str
    model_kind: str
    recipe: str
    baseline: str
    device: str
    device_name: str
    cpu_isa_flags: list[str] = Field(default_factory=list)
    batch_size: int
    seq_len: int
    tokens_per_step: int
    layers: list[LayerAdvice]
    baseline_step_ms: float
    """Whole training step in the baseline, measured by the advisor (median of its steps)."""
    rest_step_ms: float | None = None
    """Whole step under the recipe with every linear layer kept out of it (measured)."""
    all_step_ms: float | None = None
    """Whole step under the recipe on every linear layer (measured by the advisor)."""
    predicted_all: float
    predicted_advised: float
    advised: list[str]
    """Layers where the recipe pays."""
    filter_option: str
    """keep_fp32 (autocast recipes) or fp8_filter (FP8/FP4 recipes)."""
    filter_value: Any
    filter_yaml: str
    """The precision entry to paste into the suite."""
    tolerance: float
    """Schema 1's rule: a layer paid when it saved more than this fraction of its baseline
    GEMM time. Schema 2 decides by the uncertainty below."""
    step_noise_ms: float | None = None
    """Half-width of the measured whole-step difference T_rest - T_all (paired probe steps),
    ms; None: too few steps to tell (then no layer is kept out)."""
    kept_out_saving_ms: float | None = None
    """What keeping the candidate layers out is predicted to save against every layer, ms per
    step (None: no layer's conversion costs)."""
    uncertainty_ms: float | None = None
    """What that saving had to exceed: the whole step's and those layers' timing noise
    combined (analysis/advice.Decision); the advised set is a subset only when it did."""
    decision: str = ""
    """The decision in words, as the CLI printed it."""
    layer_rounds: int | None = None
    """Rounds of layer timings the decision needed (each shape timed once a round)."""
    probe_steps: int | None = None
    """Whole steps timed per recipe (the first ones, or all where the decision needed them)."""
    advisor_s: float
    """Wall time of the advisor's own timings (whole steps, then layers), verification
    excluded."""
    note: str = ""
    verification: Verification | None = None
    created_at: str

    @property
    def best_ratio(self) -> float:
        """The lowest predicted step ratio: every layer or the advised set."""
        return min(self.predicted_all, self.predicted_advised)

    @property
    def pays(self) -> bool:
        """Some choice of layers is predicted faster than the baseline (step ratio below 1)."""
        return self.best_ratio < 1.0

    def filter_line(self) -> str:
        """What to do with the filter: paste it where the recipe pays; where no choice of
        layers is predicted faster than the baseline, say so first (the CLI and the report)."""
        if self.pays:
            return f"paste into the suite's precisions: {self.filter_yaml}"
        return (f"{self.recipe} does not pay here: every choice of layers is predicted slower "
                f"than {self.baseline} (best step ratio x{self.best_ratio:.3f}); stay on "
                f"{self.baseline}. "
                f"If you run {self.recipe} anyway, the least slow layers: {self.filter_yaml}")


def advice_path(results: Path, model: str, recipe: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in f"{model}__{recipe}")
    return results / ADVICE_DIR / f"{safe}.json"


def write_advice(results: Path, rec: AdviceRecord) -> Path:
    return write_output(advice_path(results, rec.model, rec.recipe),
                        rec.model_dump_json(indent=1), "advice")


def load_advice(results: Path) -> list[AdviceRecord]:
    """Every advice file of a results directory (none: an empty list)."""
    out = []
    for path in sorted((results / ADVICE_DIR).glob("*.json")):
        try:
            out.append(AdviceRecord.model_validate_json(path.read_text(encoding="utf-8")))
        except ValidationError as exc:
            raise UserError(f"{path}: corrupt advice file: {first_error(exc, AdviceRecord)}; "
                            "delete it and run `mpbench advise` again") from None
    return out
