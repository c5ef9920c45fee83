"""Numbers a user typed, checked once: NaN slips through every range check (``nan < 0`` and ``nan > 0`` are both
False), and a saved workflow or a command line can carry NaN or inf where a widget never would. One NaN strength
turns a whole sampled video into NaN, so such values are refused up front, naming the field and a value to use."""

from __future__ import annotations

import math

from .errors import InvalidInputError


def finite(value, name: str, example: str = "") -> float:
    """``value`` as a float, or InvalidInputError when it is not a number, NaN or infinite."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        hint = f" Use e.g. {example}." if example else ""
        raise InvalidInputError(f"{name} must be a finite number; got {value!r}.{hint}")
    return number


def positive_fps(value, name: str = "fps") -> float:
    """A frame rate: finite and above 0 (a video of 0 or NaN frames per second cannot be written)."""
    fps = finite(value, name, "8 or 24")
    if fps <= 0:
        raise InvalidInputError(f"{name} must be above 0 frames per second; got {value!r}. Use e.g. 8 or 24.")
    return fps
