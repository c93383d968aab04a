"""The suite schema. Every field is checked at load; errors name the dotted path."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from mpbench.config import Strict
from mpbench.config.errors import unknown_name
from mpbench.config.model_sizes import MODEL_SIZES
from mpbench.config.parallel import ParallelConfig

DeviceKind = Literal["cpu", "cuda"]


REFERENCE_KEYS = ("size", "arch", "n_layer", "n_head", "n_embd", "n_kv_head", "ffn_hidden",
                  "block_size")
HF_KEYS = ("name", "hf", "hf_config", "vocab_size", "attn_implementation", "config")
"""Keys of an `hf` / `hf_config` entry that are mpbench's; every other key overrides the config."""
NOT_HF_KEYS = ("size", "arch", "module", "args", "max_seq_len", "returns")
"""mpbench keys of other entry kinds: left in place so that validation names them."""


class ModelSpec(Strict):
    """One model: a reference size or inline dims, a Hugging Face config, or a user factory.

    - `size` (named, with overrides) or `arch` + n_layer, n_head, n_embd: mpbench's models;
    - `hf: <model_type>` with config keys as overrides, or `hf_config: path/config.json`:
      a Transformers causal LM built from its config with random weights;
    - `module: "package.module:factory"` with `args`: any torch.nn.Module the factory returns.
    """

    name: str | None = None
    """Label in results; defaults to the size name (or model_type, or factory name)."""
    size: str | None = None
    arch: Literal["gpt", "llama"] | None = None
    n_layer: int | None = Field(None, gt=0)
    n_head: int | None = Field(None, gt=0)
    n_embd: int | None = Field(None, gt=0)
    n_kv_head: int | None = Field(None, gt=0)
    ffn_hidden: int | None = Field(None, gt=0)
    block_size: int | None = Field(None, gt=0)
    vocab_size: int | None = Field(None, gt=0)
    """None: the data source's vocabulary (reference models) or the model's own (hf, module);
    set it to keep a family's GEMM shapes (50304)."""
    hf: str | None = Field(None, min_length=1, description="Transformers model_type (llama, qwen2, gpt2, ...)")
    hf_config: str | None = Field(None, min_length=1, description="path to a Transformers config.json")
    config: dict[str, Any] = Field(default_factory=dict)
    """hf / hf_config: config overrides (collected from the entry's other keys)."""
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] | None = None
    """hf / hf_config: Transformers attention implementation (default sdpa)."""
    module: str | None = Field(None, description="package.module:factory returning a torch.nn.Module")
    args: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the factory")
    max_seq_len: int | None = Field(None, gt=0, description="module: longest sequence the model takes")
    returns: Literal["logits", "loss"] = "logits"
    """module: forward(input_ids) -> logits (mpbench takes the loss), or
    forward(input_ids, targets) -> the mean cross-entropy loss."""

    @field_validator("module")
    @classmethod
    def _factory_path(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", value):
            raise ValueError(f"'{value}' is not package.module:factory; write the module's import "
                             "path, a colon, and the name of the function that builds the model")
        return value

    @model_validator(mode="before")
    @classmethod
    def _collect_overrides(cls, data: Any) -> Any:
        # a dumped entry holds every key, None where unset: only a given hf/hf_config counts
        if isinstance(data, dict) and (data.get("hf") is not None
                                       or data.get("hf_config") is not None):
            overrides = {k: v for k, v in data.items()
                         if k not in HF_KEYS + NOT_HF_KEYS and v is not None}
            own = {k: v for k, v in data.items() if k in HF_KEYS + NOT_HF_KEYS}
            given = own.get("config") or {}
            if isinstance(given, dict):
                own["config"] = {**given, **overrides}
            return own
        return data

    @model_validator(mode="after")
    def _named_or_inline(self) -> ModelSpec:
        sources = [k for k in ("hf", "hf_config", "module") if getattr(self, k) is not None]
        if len(sources) > 1:
            raise ValueError(f"give one of hf, hf_config or module, not {' and '.join(sources)}")
        if sources:
            if self.module is not None:
                used = [k for k in (*REFERENCE_KEYS, "attn_implementation") if getattr(self, k) is not None]
                if self.config:
                    used.append("config")
                if used:
                    raise ValueError(f"{used[0]} does not apply to a module entry; pass the "
                                     "factory's settings in args")
            elif (self.args or self.max_seq_len is not None or self.size or self.arch
                  or self.returns != "logits"):
                raise ValueError("size, arch, args, max_seq_len and returns do not apply to an "
                                 "hf entry; give keys of the Hugging Face config directly")
            return self
        if self.args or self.max_seq_len is not None or self.returns != "logits":
            raise ValueError("args, max_seq_len and returns apply to module entries "
                             "(module: pkg.mod:factory)")
        if self.size is None and self.arch is None:
            raise ValueError("give `size` (a named model), `arch` with n_layer, n_head, n_embd, "
                             "`hf` (a Transformers model_type), `hf_config` or `module`")
        if self.size is not None and self.size not in MODEL_SIZES:
            raise ValueError(unknown_name("model size", self.size, MODEL_SIZES))
        if self.size is None:
            missing = [f for f in ("n_layer", "n_head", "n_embd") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"inline model needs {', '.join(missing)}")
        return self

    @property
    def kind(self) -> Literal["reference", "hf", "module"]:
        if self.module is not None:
            return "module"
        return "hf" if self.hf is not None or self.hf_config is not None else "reference"

    @property
    def label(self) -> str:
        if self.name or self.size:
            return self.name or self.size or ""
        if self.hf is not None:
            return f"hf-{self.hf}"
        if self.hf_config is not None:
            parts = [p for p in self.hf_config.replace("\\", "/").split("/") if p]
            if len(parts) > 1 and parts[-1] == "config.json":  # ckpt/config.json -> hf-ckpt
                parts.pop()
            return "hf-" + (parts[-1].removesuffix(".json") if parts else "config")
        if self.module is not None:
            return self.module.split(":")[-1]
        return f"{self.arch}-{self.n_layer}x{self.n_embd}"


class PrecisionSpec(Strict):
    """A precision recipe of the suite, by registry name (mpbench/precision/), with options."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class ProfilerSpec(Strict):
    """A profiler to attach, by registry name (mpbench/profilers/), with its options."""

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


class BudgetConfig(Strict):
    """Hold a suite to `seconds` by measurement: every recipe's step time is calibrated before
    the first run, and every run's measured steps are scaled down alike to fit."""

    seconds: float = Field(gt=0, description="wall time for the whole run command: calibration, "
                                               "every run with its profilers and eval, the report")
    min_steps: int = Field(5, gt=0, description="fewest measured steps; when even these do not "
                                                 "fit, the budget cannot be met and it says so")
    strict: bool = Field(False, description="a budget that cannot be met stops the run before "
                                            "training (exit 2); false: it runs at min_steps")
    calibration_steps: int = Field(3, gt=0, le=20,
                                   description="measured steps of each recipe's calibration run, "
                                               "after the run's own warm-up; their median is "
                                               "the recipe's step time")


# Suite `extensions:` sections, each validated by the schema of the component that reads it.
class ConvergenceOptions(Strict):
    """`extensions.convergence` in a suite file."""

    baseline: str = "fp32"
    tolerance: float | None = Field(None, gt=0, description="equivalence margin in loss units "
                                    "(nats); default: margin_k FP32 seed-to-seed stdevs")
    margin_k: float = Field(1.0, gt=0, description="margin in FP32 seed-to-seed stdevs")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="TOST level (one-sided)")
    band_k: float = Field(2.0, gt=0, description="band half-width in FP32 stdevs per step")
    paired: bool = Field(True, description="pair each recipe's seed with FP32's same seed")
    target_slack: float | None = Field(None, ge=0, description="time to target: reach FP32's "
                                       "final eval loss + this (default: the equivalence margin)")


EXTENSIONS: dict[str, type[BaseModel]] = {"convergence": ConvergenceOptions}
"""Section name -> its schema (mpbench.analysis.convergence reads `convergence`)."""


class Suite(Strict):
    name: str = Field(min_length=1)
    description: str = ""
    claims: list[str] = Field(default_factory=list, description="claim ids the suite targets")
    models: list[ModelSpec] = Field(min_length=1)
    precisions: list[PrecisionSpec] = Field(min_length=1)
    train: TrainConfig = Field(default_factory=TrainConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    repeats: int = Field(1, ge=1, le=100, description=(
        "runs of each configuration and seed, interleaved (A B C A B C), each in a fresh "
        "process when above 1"))
    profilers: list[ProfilerSpec] = Field(
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
