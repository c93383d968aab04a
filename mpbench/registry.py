"""Name -> class tables for what a suite names (recipes, profilers, exporters)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Protocol, TypeVar


class Named(Protocol):
    name: ClassVar[str]


T = TypeVar("T", bound=Named)


def registrar(table: dict[str, type[T]], kind: str) -> Callable[[type[T]], type[T]]:
    """A class decorator that adds the class to `table` under its `name`, once."""

    def register(cls: type[T]) -> type[T]:
        if cls.name in table:
            raise ValueError(f"{kind} {cls.name!r} registered twice")
        table[cls.name] = cls
        return cls

    return register
