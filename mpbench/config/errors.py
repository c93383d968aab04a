"""Turn pydantic validation errors into one line naming the dotted path and the fix."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError


def dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list, tuple):
        for arg in typing.get_args(annotation):
            if (found := _model_in(arg)) is not None:
                return found
    return None


def keys_at(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The valid keys of the mapping at `loc` (used for 'did you mean')."""
    model: type[BaseModel] | None = root
    for part in loc:
        if model is None:
            return []
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        model = _model_in(field.annotation) if field else None
    if model is None:
        return []
    # a model may take fewer keys than it has fields (an FP8 preset: those of its scaling)
    keys = getattr(model, "option_keys", None)
    return sorted(keys() if callable(keys) else model.model_fields)


def describe_error(err: dict[str, Any], root: type[BaseModel], prefix: tuple[Any, ...] = ()) -> str:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    path = dotted(prefix + loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        valid = keys_at(root, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"{path}: unknown key; {hint}valid keys: {', '.join(valid)}"
    if kind == "missing":
        return f"{path}: required key is missing; add it to the suite"
    msg = err["msg"].removeprefix("Value error, ")
    if kind == "value_error" or "input" not in err:
        return f"{path}: {msg}"
    return f"{path}: {msg[0].lower()}{msg[1:]} (got {err['input']!r})"


def first_error(exc: ValidationError, root: type[BaseModel], prefix: tuple[Any, ...] = ()) -> str:
    errors = exc.errors()
    message = describe_error(dict(errors[0]), root, prefix)
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return message


def unknown_name(kind: str, name: str, valid: Any) -> str:
    names = sorted(valid)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"unknown {kind} '{name}'; {hint}valid: {', '.join(names)}"
