"""Recipes: the six motion-customisation methods (and the naive baseline) over the shared trainer.

Adding a method = one new module with a RecipeConfig subclass and a Recipe subclass, plus one line in RECIPES.
"""

from __future__ import annotations

import json

from ..errors import InvalidInputError
from .base import Recipe, RecipeConfig, Stage
from .customize_a_video import CustomizeAVideo, CustomizeAVideoConfig
from .det import DeT, DeTConfig
from .motion_crafter import MotionCrafter, MotionCrafterConfig
from .motion_director import MotionDirector, MotionDirectorConfig
from .naive import Naive, NaiveConfig
from .newmove import NewMove, NewMoveConfig
from .vmc import VMC, VMCConfig

RECIPES: dict[str, type[Recipe]] = {
    cls.name: cls for cls in (MotionDirector, VMC, CustomizeAVideo, MotionCrafter, NewMove, DeT, Naive)
}


def recipe_names() -> list[str]:
    return list(RECIPES)


def get_recipe(recipe: "str | Recipe", **options) -> Recipe:
    """A Recipe from its name (with its METHODS.md defaults, ``options`` overriding knobs) or a ready instance."""
    if isinstance(recipe, Recipe):
        return recipe.__class__(recipe.config, **options) if options else recipe
    if recipe not in RECIPES:
        raise InvalidInputError(f"Unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}.")
    cls = RECIPES[recipe]
    unknown = set(options) - set(cls.config_class.__dataclass_fields__)
    if unknown:
        raise InvalidInputError(
            f"Recipe {recipe!r} has no option(s) {', '.join(sorted(unknown))}; its options are "
            f"{', '.join(cls.config_class.__dataclass_fields__)}."
        )
    return cls(**options)


def parse_options(pairs) -> dict:
    """``["temporal_kernel=true", "tracking_weight=0.2"]`` -> recipe options (values read as JSON, else as text)."""
    options = {}
    for pair in pairs:
        key, sep, value = str(pair).partition("=")
        if not sep or not key:
            raise InvalidInputError(
                f"A recipe option has the form key=value (e.g. temporal_kernel=true); got {pair!r}.")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


__all__ = [
    "parse_options",
    "RECIPES", "Recipe", "RecipeConfig", "Stage", "get_recipe", "recipe_names",
    "MotionDirector", "MotionDirectorConfig", "VMC", "VMCConfig", "CustomizeAVideo", "CustomizeAVideoConfig",
    "MotionCrafter", "MotionCrafterConfig", "NewMove", "NewMoveConfig", "DeT", "DeTConfig", "Naive", "NaiveConfig",
]
