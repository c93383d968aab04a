"""Precision recipes. Importing this package registers every built-in recipe."""

from __future__ import annotations

from mpbench.precision import standard  # noqa: F401  (registers the recipes)
from mpbench.precision.base import RECIPES, Recipe, RecipeOptions, register

__all__ = ["RECIPES", "Recipe", "RecipeOptions", "get_recipe", "register"]


def get_recipe(name: str, options: dict | None = None) -> Recipe:
    cls = RECIPES[name]
    return cls(cls.Options(**(options or {})))
