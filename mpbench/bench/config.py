"""The micro-benchmark suite (suites/microbench.yaml): schema, per-device profiles, loading."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from mpbench.bench.bandwidth import BandwidthOp
from mpbench.bench.timing import TimingConfig
from mpbench.config import Strict
from mpbench.config.errors import first_error
from mpbench.config.loader import deep_merge, read_yaml
from mpbench.config.model_sizes import MODEL_SIZES
from mpbench.config.schema import DeviceKind
from mpbench.dtypes import DtypeKey
from mpbench.errors import UserError


class GemmConfig(Strict):
    enabled: bool = True
    dtypes: list[DtypeKey] = Field(default=["fp32", "tf32", "fp16", "bf16", "fp8"])
    square: list[int] = Field(default_factory=lambda: [1024])
    """Square sizes M = N = K."""
    models: list[str] = Field(default_factory=list)
    """Named models whose linear layers give transformer-shaped GEMMs."""
    tokens: int = Field(2048, gt=0, description="M of the transformer shapes (batch x sequence)")
    backward_shapes: bool = False
    """Also the input- and weight-gradient GEMMs of each layer."""
    fp8_fast_accum: bool | None = None
    """torch._scaled_mm use_fast_accum. None (default): both variants, fast (the forward GEMM
    of TE and torchao) and exact (their backward GEMMs); true / false: only that one."""

    @field_validator("square")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(s <= 0 for s in v):
            raise ValueError(f"sizes must be positive (got {v})")
        return v

    @field_validator("models")
    @classmethod
    def _known_models(cls, v: list[str]) -> list[str]:
        for name in v:
            if name not in MODEL_SIZES:
                raise ValueError(f"unknown model '{name}'; known: {', '.join(MODEL_SIZES)}")
        return v


class AlignmentConfig(Strict):
    enabled: bool = True
    dtypes: list[DtypeKey] = Field(default=["fp32", "fp16", "bf16"])
    base: int = Field(4096, gt=0, multiple_of=16, description="aligned size: M, and K = N at offset 0")
    offsets: list[int] = Field(default_factory=lambda: [0, -1, 4, 8])

    @model_validator(mode="after")
    def _offsets(self) -> AlignmentConfig:
        if 0 not in self.offsets:
            raise ValueError("offsets must include 0 (the aligned case the others are compared to)")
        if any(self.base + o <= 0 for o in self.offsets):
            raise ValueError(f"every base + offset must be positive (base {self.base})")
        return self


class BandwidthConfig(Strict):
    enabled: bool = True
    dtypes: list[Literal["fp32", "fp16", "bf16"]] = Field(default=["fp32", "fp16", "bf16"])
    ops: list[BandwidthOp] = Field(default=["add", "mul", "layer_norm"])
    elements: int = Field(1 << 26, gt=0, description="elements per tensor; make it outgrow the caches")
    hidden: int = Field(4096, gt=0, description="layer_norm row width")

    @model_validator(mode="after")
    def _rows(self) -> BandwidthConfig:
        if self.elements < self.hidden:
            raise ValueError(f"elements ({self.elements}) must be at least hidden ({self.hidden})")
        return self


class PredictionConfig(Strict):
    enabled: bool = True
    gemm_shares: list[float] = Field(default_factory=lambda: [0.5, 0.7, 0.9])
    """Assumed GEMM shares of step time, used when no training results are given (--runs)."""

    @field_validator("gemm_shares")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if any(not 0 < s <= 1 for s in v):
            raise ValueError(f"shares must be in (0, 1] (got {v})")
        return v


class MicrobenchSuite(Strict):
    name: str = Field(min_length=1)
    description: str = ""
    claims: list[str] = Field(default_factory=list)
    profile: str = "default"
    threads: int | None = Field(None, gt=0, description="torch CPU threads (default: torch's)")
    """On a shared CPU, fewer threads than cores avoids stalls when another process takes a core."""
    timing: TimingConfig = Field(default_factory=TimingConfig)
    gemm: GemmConfig = Field(default_factory=GemmConfig)
    alignment: AlignmentConfig = Field(default_factory=AlignmentConfig)
    bandwidth: BandwidthConfig = Field(default_factory=BandwidthConfig)
    prediction: PredictionConfig = Field(default_factory=PredictionConfig)
    devices: dict[DeviceKind, dict[str, Any]] = Field(default_factory=dict)

    def quick(self) -> MicrobenchSuite:
        """--quick: shorter timing, one square size, one model, forward shapes only."""
        return self.model_copy(update={
            "timing": self.timing.quick(),
            "gemm": self.gemm.model_copy(update={"square": self.gemm.square[:1],
                                                 "models": self.gemm.models[:1],
                                                 "backward_shapes": False}),
        })


def _validate(raw: dict[str, Any], path: Path, prefix: tuple[str, ...]) -> MicrobenchSuite:
    try:
        return MicrobenchSuite.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{path}: {first_error(exc, MicrobenchSuite, prefix)}") from None


def _check_claims(suite: MicrobenchSuite, path: Path) -> None:
    from mpbench.config.claim_ids import CLAIM_IDS
    from mpbench.config.schema import unknown_name

    for i, claim in enumerate(suite.claims):
        if claim not in CLAIM_IDS:
            raise UserError(f"{path}: claims[{i}]: {unknown_name('claim id', claim, CLAIM_IDS)}")


def load_microbench(path: str | Path, device_kind: DeviceKind | str) -> MicrobenchSuite:
    """Validate the base suite and both device profiles; return the one for `device_kind`."""
    path = Path(path)
    raw = read_yaml(path)
    if "precisions" in raw or "models" in raw:
        raise UserError(f"{path} is a training suite (it has models/precisions); run it with "
                        "`mpbench run`, or give a micro-benchmark suite such as suites/microbench.yaml")
    base = _validate(raw, path, ())
    _check_claims(base, path)
    resolved: dict[str, MicrobenchSuite] = {}
    for kind in ("cpu", "cuda"):
        override = (raw.get("devices") or {}).get(kind) or {}
        if not isinstance(override, dict):
            raise UserError(f"{path}: devices.{kind}: must be a mapping of suite keys")
        bad = [k for k in override if k in ("name", "devices", "profile", "claims")]
        if bad:
            raise UserError(f"{path}: devices.{kind}.{bad[0]}: cannot be set per device; "
                            "move it to the top level")
        merged = deep_merge({k: v for k, v in raw.items() if k != "devices"}, override)
        merged["profile"] = kind if override else "default"
        # Errors in merged keys name the device section only when the key came from it.
        try:
            resolved[kind] = MicrobenchSuite.model_validate(merged)
        except ValidationError as exc:
            first = exc.errors()[0]["loc"]
            prefix = ("devices", kind) if first and first[0] in override else ()
            raise UserError(f"{path}: {first_error(exc, MicrobenchSuite, prefix)}") from None
    return resolved[device_kind]
