"""The run record: one JSON file per run, one versioned schema for every consumer.

Format history (bump SCHEMA_VERSION and add a step to results/upgrade.py when it changes):
  1  first version.
  2  `config_key` (results/key.py): the configuration every view groups by, written when the
     record is made (derived from the run id and settings for version-1 records).
  3  `recipe.role` / `recipe.role_note` (results/recipe_card.py): the recipe says whether it
     is the baseline, mixed precision done right, or shown for context only (filled in from
     the recipe's name for older records, as the recipes of that time said).
  4  `config_key.recipe_id`: the key's recipe name plus options tag, stored as
     `config_key.precision` before (renamed by the upgrader; the run id is the same).
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
)
from pydantic_core import InitErrorDetails

from mpbench.config.errors import first_error
from mpbench.results.env_card import EnvCard
from mpbench.results.key import ConfigKey
from mpbench.results.payloads import MemoryResult, ProfileResult, Skipped
from mpbench.results.payloads.base import StepStats as StepStats

SCHEMA_VERSION = 5
RESULTS_FORMAT = "mpbench-results"

Status = Literal["ok", "skipped", "oom", "diverged", "failed"]
P = TypeVar("P", bound=ProfileResult)


class MemoryStats(BaseModel):
    kind: Literal["cuda", "cpu-rss"]
    peak_bytes: int | None = None
    """Headline peak: CUDA max allocated, or on a CPU the peak RSS above the run's baseline."""
    peak_reserved_bytes: int | None = None
    peak_rss_bytes: int | None = None
    baseline_rss_bytes: int | None = None
    """RSS before the model was built (the process's torch and data), CPU only."""
    alloc_retries: int | None = None
    num_ooms: int | None = None


class CompileInfo(BaseModel):
    """torch.compile for this run: asked for by the suite, used, or refused by the recipe."""

    requested: bool
    used: bool
    reason: str | None = None
    """Why the recipe ran eager although train.compile asked for torch.compile."""
    compile_s: float | None = None
    """One-off compile cost: the first step's time less the median measured step."""


class ProbeTimes(BaseModel):
    """One timing of the machine-drift probe (bench/timing.time_probe), mean of its repeats."""

    matmul_ms: float
    copy_ms: float

    @property
    def score_ms(self) -> float:
        """Geometric mean of the two timings: one number for the machine's speed."""
        return float((self.matmul_ms * self.copy_ms) ** 0.5)


class DriftProbe(BaseModel):
    """The fixed probe timed just before and just after a run: did the machine change?"""

    before: ProbeTimes
    after: ProbeTimes
    device: str = "cpu"

    @property
    def score_ms(self) -> float:
        """Geometric mean of the four timings: one number for the machine's speed."""
        t = (self.before.matmul_ms, self.before.copy_ms, self.after.matmul_ms, self.after.copy_ms)
        return float((t[0] * t[1] * t[2] * t[3]) ** 0.25)


class BudgetNote(BaseModel):
    """Why a run has the steps it has when its device profile sets a time budget."""

    budget_s: float
    configured_steps: int
    steps: int
    """Measured steps every run of the suite got (equal for every recipe)."""
    estimate_s: float
    """Estimated wall time of the whole command at `steps`, calibration included."""
    calibration_s: float
    reason: str
    run_estimate_s: float | None = None
    """This run's own estimate (its record's duration_s is what it took)."""
    calibration_probe: ProbeTimes | None = None
    """The drift probe timed right after calibration: the machine the estimate was made on."""


def _error(name: str, found: Any, message: str) -> ValidationError:
    """A bad profiler result, located at profiler_results.<name>."""
    return ValidationError.from_exception_data("profiler_results", [InitErrorDetails(
        type="value_error", loc=(name,), input=found, ctx={"error": message})])


class RunRecord(BaseModel):
    """One run as stored: a field this schema does not name is refused (a misspelled field
    is an error, not silently kept); records of older schemas are upgraded first."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    kind: Literal["train"] = "train"
    run_id: str
    config_key: ConfigKey
    """Which configuration this run replicates (seed and repeat are the replication unit):
    the run's one identity, from the plan (RunSpec.config_key); the run id is written from
    it (ConfigKey.run_id) and never parsed back (results/upgrade.py derives the key once,
    for schema-1 records and old exports)."""
    suite: str
    suite_description: str = ""
    profile: str
    model: str
    model_dims: dict[str, Any]
    n_params: int | None = None
    model_kind: str = "reference"
    """reference (mpbench's GPT / Llama), hf (Transformers config) or module (a user factory)."""
    architecture: str | None = None
    """gpt / llama, the Transformers class (LlamaForCausalLM) or the user module's class."""
    attn_implementation: str | None = None
    """sdpa, eager or flash_attention_2 (Transformers' names; the reference models use sdpa)."""
    model_source: dict[str, Any] = Field(default_factory=dict)
    """What the model was built from (full Transformers config, factory and args), to rebuild it."""
    precision: str
    recipe: dict[str, Any]
    seed: int
    repeat: int = 0
    """Which repeat of this configuration and seed (mpbench run --repeats), 0 for the first."""
    batch_size: int
    seq_len: int
    train: dict[str, Any]
    data: dict[str, Any] = Field(default_factory=dict)
    device: str
    device_name: str
    status: Status
    reason: str | None = None
    diverged_step: int | None = None
    last_good_loss: float | None = None

    step_times_ms: list[float] = Field(default_factory=list)
    step_stats: StepStats | None = None
    tokens_per_step: int
    tokens_per_s: float | None = None
    window_s: float | None = None
    hook_time_s: float = 0.0
    first_step_s: float | None = None
    """Wall time of the first warm-up step (includes torch.compile when on)."""
    compile: CompileInfo | None = None
    memory: MemoryStats | None = None
    probe: DriftProbe | None = None
    """Machine-drift probe around the run (absent in records made before it existed)."""
    loss_curve: list[tuple[int, float]] = Field(default_factory=list)
    eval_curve: list[tuple[int, float]] = Field(default_factory=list)
    eval_times_s: list[float] = Field(default_factory=list)
    """Training time at each eval_curve point: summed step times, warm-up included but the
    first step (one-off costs) left out, eval and profiler hooks excluded (the time-to-target
    clock)."""
    final_train_loss: float | None = None
    eval_loss: float | None = None
    entropy_floor: float | None = None

    flops_per_token: float | None = None
    flops_per_token_counter: float | None = None
    flops_note: str | None = None
    flops_method: str | None = None
    """formula (6N+12LHQT, flop counter as cross-check) or flop_counter (FlopCounterMode)."""
    achieved_tflops: float | None = None
    peak_tflops: float | None = None
    peak_source: str | None = None
    mfu: float | None = None

    profiler_results: dict[str, ProfileResult | Skipped] = Field(
        default_factory=dict, validation_alias=AliasChoices("profiler_results", "profiles"))
    """Each profiler's typed result (results/payloads/) by its name, or why it was skipped
    (`profiles` in records before the rename). Read it with `result(Model)`."""
    env: EnvCard
    """The environment card (results/env_card.py): machine and software versions."""
    suite_config: dict[str, Any] = Field(default_factory=dict)
    started_at: str
    finished_at: str
    duration_s: float
    traceback: str | None = None
    """For status 'failed': where it broke, for the bug report."""
    budget: BudgetNote | None = None
    """Set when the suite ran under a time budget: the chosen steps and why."""

    @field_validator("profiler_results", mode="before")
    @classmethod
    def _typed_results(cls, raw: Any) -> Any:
        """Each stored result as the model registered under its name, checked once, here."""
        if not isinstance(raw, dict):
            return raw
        out: dict[str, Any] = {}
        for name, found in raw.items():
            skipped = isinstance(found, Skipped) or (
                isinstance(found, dict) and "skipped" in found)
            model = Skipped if skipped else ProfileResult.models.get(name)
            if model is None:
                raise _error(name, found, "no profiler of this mpbench stores a result of that "
                             f"name (known: {', '.join(sorted(ProfileResult.models))})")
            if isinstance(found, Skipped | ProfileResult) and type(found) is not model:
                raise _error(name, found, f"holds a {type(found).__name__}, not a "
                             f"{model.__name__}")
            try:
                out[name] = model.model_validate(found)
            except ValidationError as exc:
                raise _error(name, found, first_error(exc, model)) from None
        return out

    @field_serializer("profiler_results")
    def _stored_results(self, results: dict[str, ProfileResult | Skipped]) -> dict[str, Any]:
        """As the profiler set them: the fields it set, so stored records keep their shape."""
        return {k: v.model_dump(mode="json", exclude_unset=True) for k, v in results.items()}

    def result(self, model: type[P]) -> P | None:
        """The result of the profiler that stores `model`, None when it did not run."""
        found = self.profiler_results.get(model.name)
        return found if isinstance(found, model) else None

    def skip_reason(self, model: type[ProfileResult]) -> str | None:
        """Why the profiler that stores `model` did not run here, None when it ran or was off."""
        found = self.profiler_results.get(model.name)
        return found.skipped if isinstance(found, Skipped) else None

    @property
    def device_kind(self) -> Literal["cuda", "cpu"]:
        return "cuda" if self.device.startswith("cuda") else "cpu"

    def peak_memory(self) -> float | None:
        """The run's peak memory: the loop's headline peak, else the memory profiler's
        measured one."""
        if self.memory is not None and self.memory.peak_bytes is not None:
            return float(self.memory.peak_bytes)
        m = self.result(MemoryResult)
        if m is not None and m.has_parts and m.measured_peak_bytes is not None:
            return float(m.measured_peak_bytes)
        return None
