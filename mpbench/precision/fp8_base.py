"""What every FP8 (and FP4) recipe shares: one recipe class per backend whose options hold the
scaling, the conversion of a built model (convert.py), the inventory of which layers run in
FP8, and the `fp8` block of the record.

As torchtitan's float8 converter takes a `recipe_name`, a backend here is one `Fp8Recipe`
subclass with a `scaling` option and a table of what each scaling is (`Scaling`); the names
suites use (fp8-te-delayed, fp8-ao-rowwise, ...) are presets: the backend with its scaling
pinned, registered by one `preset(...)` line. A new scaling of an existing backend is one
table entry and one preset line.

FP8 replaces the GEMMs of the linear layers the filter allows (by default every linear
with FP8-legal shapes but the LM head), on every model: reference, Hugging Face or user.
Embeddings, norms, attention (softmax, score and value matmuls) and the LM head run under
BF16 autocast. A backend only says how one nn.Linear becomes its FP8 module (`convert`).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch
from pydantic import Field, field_validator, model_validator
from torch import nn

from mpbench.config.model_sizes import ModelConfig
from mpbench.precision import convert as converter
from mpbench.precision.base import Recipe, RecipeOptions, register
from mpbench.precision.convert import Fp8Filter


def import_optional(module: str, library: str, install: str) -> tuple[ModuleType | None, str | None]:
    """(the module, None), or (None, why the optional `library` cannot be used)."""
    try:
        return importlib.import_module(module), None
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] == module.split(".")[0]:
            return None, f"{library} is not installed; {install}"
        return None, f"{library} failed to import ({exc}); reinstall it: {install}"
    except Exception as exc:  # a broken install (or TE's CUDA libraries) can raise anything
        return None, f"{library} failed to import ({type(exc).__name__}: {exc}); {install}"


@dataclass(frozen=True)
class Scaling:
    """One scaling of a backend: how its scales are chosen and which options it reads."""

    words: str
    """How scales are chosen, in words, for the record."""
    reads: tuple[str, ...] = ()
    """The backend's scaling-specific options this scaling takes (others are refused)."""
    gemm_dtype: str | None = None
    """The GEMMs' dtype where it is not FP8 (NVFP4: fp4)."""


class Fp8Options(RecipeOptions):
    """The options of every FP8 backend; a backend adds `scaling` (a Literal of its table's keys)
    and its own fields, and sets `scalings`."""

    allow_bf16_fallback: bool = Field(
        False, description="keep linear layers whose dims are not divisible by 16 in BF16 "
        "(listed in the record) instead of refusing the suite")
    fp8_filter: Fp8Filter = Field(
        default_factory=Fp8Filter, description="which linear layers become FP8: include / "
        "exclude name globs and the divisible_by shape rule")

    scalings: ClassVar[Mapping[str, Scaling]] = {}
    presets: ClassVar[Mapping[str, str]] = {}
    """Scaling -> the recipe name of its preset (fp8-te-delayed ...)."""
    pinned: ClassVar[str | None] = None
    """The preset's recipe name when a preset fixes `scaling` (then it is not an option)."""
    if TYPE_CHECKING:
        scaling: str

    @property
    def spec(self) -> Scaling:
        return self.scalings[self.scaling]

    @field_validator("scaling", mode="before", check_fields=False)
    @classmethod
    def _pinned(cls, value: Any) -> Any:
        default = cls.model_fields["scaling"].default
        if cls.pinned is not None and value != default:
            other = cls.presets.get(value)
            fix = f"name the recipe {other}" if other else "no recipe has it yet: remove the key"
            raise ValueError(f"the recipe {cls.pinned} is scaling {default!r}; for {value!r} {fix}")
        return value

    @model_validator(mode="after")
    def _read_by_scaling(self) -> Fp8Options:
        fields = type(self).model_fields
        ignored = {k for k in self.unread() if getattr(self, k) != fields[k].default}
        for key in sorted(self.model_fields_set & ignored):  # a default changes nothing
            takes = [f"{s!r}" + (f" ({self.presets[s]})" if s in self.presets else "")
                     for s, spec in self.scalings.items() if key in spec.reads]
            fix = "remove it" if self.pinned else "set that scaling or remove it"
            raise ValueError(f"{key}: only scaling {' or '.join(takes)} takes it, this recipe's "
                             f"scaling is {self.scaling!r}; {fix}")
        return self

    def unread(self) -> set[str]:
        """Scaling-specific options this scaling does not take."""
        return self.unread_by(self.scaling)

    @classmethod
    def unread_by(cls, scaling: str) -> set[str]:
        every = {key for spec in cls.scalings.values() for key in spec.reads}
        return every - set(cls.scalings[scaling].reads)

    @classmethod
    def option_keys(cls) -> list[str]:
        """The keys a suite may set (a preset: not `scaling`, nor what its scaling ignores)."""
        if cls.pinned is None:
            return list(cls.model_fields)
        scaling = cls.model_fields["scaling"].default
        return [k for k in cls.model_fields if k != "scaling" and k not in cls.unread_by(scaling)]

    def recorded(self) -> dict[str, Any]:
        """The options a suite may set, as a record holds them (a preset's scaling is its name)."""
        return self.model_dump(include=set(self.option_keys()))


F = TypeVar("F", bound="Fp8Recipe")


def preset(backend: type[F], name: str, scaling: str, summary: str) -> type[F]:
    """Register `name` as `backend` at one scaling (one line per named recipe)."""
    base = backend.Options
    if scaling not in base.scalings:
        raise ValueError(f"{backend.__name__} has no scaling {scaling!r}")
    base.presets = {**base.presets, scaling: name}
    options = type(f"{base.__name__}_{scaling}", (base,), {
        "__annotations__": {"scaling": base.model_fields["scaling"].annotation},
        "scaling": Field(scaling, description=f"fixed by the recipe name {name}"),
        "pinned": name, "__module__": backend.__module__})
    cls = type(name.title().replace("-", ""), (backend,), {
        "name": name, "summary": summary, "Options": options, "__module__": backend.__module__,
        "gemm_dtype": base.scalings[scaling].gemm_dtype})
    register(cls)
    return cls


class Fp8Recipe(Recipe):
    """Base for the FP8 recipes: BF16 autocast around FP8 linear layers."""

    family = "fp8"
    compute_dtype = torch.float8_e4m3fn
    Options: ClassVar[type[Fp8Options]] = Fp8Options
    options: Fp8Options
    backend: ClassVar[str]
    """te, torchao or emulated."""

    def __init__(self, options: RecipeOptions | None = None) -> None:
        super().__init__(options)
        # Strong references: describe() runs after training, when the model itself is gone,
        # and reads the scaling state these modules hold. Freed with the recipe.
        self._fp8_layers: list[tuple[str, nn.Module]] | None = None
        self._kept: dict[str, str] = {}
        self._fp8_weight_fraction: float | None = None
        self._cache: tuple[int | None, str] = (
            None, "model not built (run skipped or failed before prepare)")

    @property
    def spec(self) -> Scaling:
        return self.options.spec

    # -- hooks for the backends --------------------------------------------------
    def is_fp8_module(self, module: nn.Module) -> bool:
        raise NotImplementedError

    def convert(self, model: nn.Module, names: list[str], device: torch.device) -> nn.Module:
        """Swap the named linear layers (nn.Linear or Conv1D, on `device`) for FP8 modules.

        convert.swap(model, names, make) does it for a backend that makes one module from
        one nn.Linear; torchao converts through its own convert_to_float8_training."""
        raise NotImplementedError

    def formats(self) -> dict[str, str]:
        return {"forward": "e4m3", "backward": "e5m2"}

    def amax_history_len(self) -> int | None:
        return getattr(self.options, "amax_history_len", None) \
            if "amax_history_len" in self.spec.reads else None

    def weight_cache(self, fp8_modules: list[nn.Module]) -> tuple[int | None, str]:
        """Extra bytes FP8 copies of the weights cost, and how the number was obtained."""
        return None, "unknown for this backend"

    def telemetry(self, named: list[tuple[str, nn.Module]]) -> dict[str, Any]:
        return {"exposed": False}

    # -- the Recipe interface ----------------------------------------------------
    def check_shapes(self, model: ModelConfig | None, batch_size: int, seq_len: int) -> str | None:
        return converter.shape_problem(model, batch_size, seq_len,
                                       self.options.allow_bf16_fallback)

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)

    def prepare(self, model: nn.Module, device: torch.device) -> nn.Module:
        """Move the built model, then convert the layers the filter allows (every model)."""
        model = model.to(device)
        chosen = converter.plan(model, self.options.fp8_filter)
        model = self.convert(model, chosen.convert, device)
        self._take_inventory(model, chosen.kept)
        return model

    def _take_inventory(self, model: nn.Module, kept: dict[str, str]) -> None:
        fp8: list[tuple[str, nn.Module]] = []
        self._kept = {}
        total = in_fp8 = 0
        for name, module in model.named_modules():
            if (shape := converter.any_linear_shape(module)) is None:
                continue
            size = shape[0] * shape[1]
            total += size
            if self.is_fp8_module(module):
                fp8.append((name, module))
                in_fp8 += size
            else:
                self._kept[name] = kept.get(name, "not converted by this backend")
        self._fp8_layers = fp8
        self._fp8_weight_fraction = in_fp8 / total if total else None
        self._cache = self.weight_cache([module for _, module in fp8])

    def describe(self) -> dict[str, Any]:
        named = self._fp8_layers
        cache_bytes, cache_note = self._cache
        return {
            **super().describe(),
            "non_fp8_ops": "BF16 autocast (embeddings, norms, attention, LM head, loss in FP32)",
            "fp8": {
                "backend": self.backend,
                "formats": self.formats(),
                "scaling": self.spec.words,
                "amax_history_len": self.amax_history_len(),
                "layers_in_fp8": None if named is None else [name for name, _ in named],
                "layers_kept_bf16": None if named is None else list(self._kept),
                "kept_bf16_reasons": dict(self._kept),
                "fp8_weight_fraction": self._fp8_weight_fraction,
                "weight_cache_bytes": cache_bytes,
                "weight_cache_note": cache_note,
                "telemetry": self.telemetry(named) if named else {"exposed": False},
            },
        }
