"""Precision recipes. Importing this package registers every built-in recipe."""

from __future__ import annotations

# Importing a recipe module registers it (FP8 ones import TE and torchao only when used).
from mpbench.precision import (  # noqa: F401
    fp8_ao,
    fp8_emulated,
    fp8_te,
    standard,
)
from mpbench.precision.base import RECIPES, Recipe, RecipeOptions, register

__all__ = ["RECIPES", "Recipe", "RecipeOptions", "get_recipe", "register"]


def get_recipe(name: str, options: dict | None = None) -> Recipe:
    cls = RECIPES[name]
    return cls(cls.Options(**(options or {})))
