"""The suite schema. Every field is checked at load; errors name the dotted path."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mpbench.config.budget import BudgetConfig
from mpbench.distributed.config import ParallelConfig
from mpbench.models.config import MODEL_SIZES

DeviceKind = Literal["cpu", "cuda"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(Strict):
    """A named size (`size`) with optional overrides, or inline dimensions (`arch` + dims)."""

    name: str | None = None
    """Label in results; defaults to the size name."""
    size: str | None = None
    arch: Literal["gpt", "llama"] | None = None
    n_layer: int | None = Field(None, gt=0)
    n_head: int | None = Field(None, gt=0)
    n_embd: int | None = Field(None, gt=0)
    n_kv_head: int | None = Field(None, gt=0)
    ffn_hidden: int | None = Field(None, gt=0)
    block_size: int | None = Field(None, gt=0)
    vocab_size: int | None = Field(None, gt=0)
    """None: the data source's vocabulary; set it to keep a family's GEMM shapes (50304)."""

    @model_validator(mode="after")
    def _named_or_inline(self) -> ModelSpec:
        if self.size is None and self.arch is None:
            raise ValueError("give `size` (a named model) or `arch` with n_layer, n_head, n_embd")
        if self.size is not None and self.size not in MODEL_SIZES:
            raise ValueError(unknown_name("model size", self.size, MODEL_SIZES))
        if self.size is None:
            missing = [f for f in ("n_layer", "n_head", "n_embd") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"inline model needs {', '.join(missing)}")
        return self

    @property
    def label(self) -> str:
        return self.name or self.size or f"{self.arch}-{self.n_layer}x{self.n_embd}"


class PrecisionSpec(Strict):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class TrainConfig(Strict):
    batch_size: int = Field(8, gt=0, description="sequences per step")
    seq_len: int = Field(128, gt=1, description="tokens per sequence")
    steps: int = Field(30, gt=0, description="measured steps (after warm-up)")
    warmup_steps: int = Field(5, ge=0, description="steps run before timing starts")
    lr: float = Field(6e-4, gt=0, le=1.0e3)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    schedule: Literal["cosine", "constant", "linear"] = "cosine"
    lr_warmup_steps: int = Field(0, ge=0, description="linear learning-rate warm-up steps")
    weight_decay: float = Field(0.1, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float | None = Field(1.0, gt=0, description="max grad norm; null disables clipping")
    activation_checkpointing: bool = False
    compile: bool = False
    eval_batches: int = Field(4, ge=0, description="held-out batches for eval loss; 0 skips eval")
    eval_every: int = Field(0, ge=0, description="also evaluate every k steps (0: only at the end)")
    max_loss: float | None = Field(None, gt=0, description="loss above this ends the run as diverged")
    threads: int | None = Field(None, gt=0, description="torch CPU threads (default: torch's)")


class DataConfig(Strict):
    source: Literal["stdlib", "synthetic", "text", "bin"] = "stdlib"
    path: str | None = None
    max_bytes: int = Field(8_000_000, gt=0, description="bytes of corpus to read")
    val_fraction: float = Field(0.1, gt=0, lt=1)
    vocab_size: int = Field(64, gt=1, description="synthetic: vocabulary; bin: minimum vocabulary")
    concentration: float = Field(0.1, gt=0, description="synthetic: Dirichlet concentration")
    seed: int = 1234

    @model_validator(mode="after")
    def _path_for_files(self) -> DataConfig:
        if self.source in ("text", "bin") and not self.path:
            raise ValueError(f"data.source '{self.source}' needs data.path (a file)")
        return self


class Suite(Strict):
    name: str = Field(min_length=1)
    description: str = ""
    claims: list[str] = Field(default_factory=list, description="claim ids the suite targets")
    models: list[ModelSpec] = Field(min_length=1)
    precisions: list[PrecisionSpec] = Field(min_length=1)
    train: TrainConfig = Field(default_factory=TrainConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    profilers: list[PrecisionSpec] = Field(
        default_factory=list, description="profilers to attach by name, with options"
    )
    matrix: dict[str, list[Any]] = Field(
        default_factory=dict, description="train settings to vary: every combination is run"
    )
    extensions: dict[str, Any] = Field(
        default_factory=dict, description="sections owned by optional components (parallel, ...)"
    )
    parallel: ParallelConfig | None = None
    """Data-parallel training under torchrun (DDP / FSDP2); None: one process."""
    budget: BudgetConfig | None = None
    """Hold the suite to a wall-time budget on this machine (mpbench/train/calibrate.py)."""
    devices: dict[DeviceKind, dict[str, Any]] = Field(default_factory=dict)
    profile: str = "default"
    """Which device profile was merged in (set by the loader, not by the file)."""

    @field_validator("models", mode="before")
    @classmethod
    def _models_shorthand(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"size": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("precisions", "profilers", mode="before")
    @classmethod
    def _named_shorthand(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("seeds", mode="before")
    @classmethod
    def _repeats(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            if value <= 0:
                raise ValueError("seeds as a count must be >= 1 (or give a list of seeds)")
            return list(range(value))
        return value


def unknown_name(kind: str, name: str, valid: Any) -> str:
    import difflib

    names = sorted(valid)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown {kind} '{name}'; {hint}valid: {', '.join(names)}"
