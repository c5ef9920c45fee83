"""Leakage as a user sees it: the share of a sample's pixels that carry the reference clip's colour.

The clip-level leakage in metrics.py counts a sample only when the reference's colour wins the object's majority
vote, so a yellow square with red patches in several frames counts as clean. Here every frame is measured: the object
is the largest 8-connected region of palette-coloured pixels (whatever their colours, so patches of another colour on
it belong to it), the background is everything else. Per frame: the share of the object's pixels, and of the
background's, that are nearest the reference's colour; the clip's figure is the mean over frames (frames without an
object count for the background only). Undefined (NaN) where the prompt asks for the reference's own colour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .palette import COLOURS
from .tracking import COLOUR_NAMES, _as_float_frames, classify_pixels, largest_component


@dataclass(frozen=True)
class PixelLeakage:
    object_share: float
    """Mean over frames with an object of the share of its pixels in the reference's colour."""
    background_share: float
    """Mean over frames of the share of background pixels in the reference's colour."""
    worst_frame: float
    """The largest per-frame object share (one bad frame is what a viewer notices)."""


def pixel_leakage(frames, reference_colour: str, prompt_colour: str, max_distance: float = 0.35) -> PixelLeakage:
    """Per-pixel leakage of one generated clip (uint8 or float [F, H, W, 3], or a Clip)."""
    if reference_colour not in COLOURS or prompt_colour not in COLOURS:
        raise ValueError(f"colours must be among {', '.join(COLOURS)}; got {reference_colour!r}, {prompt_colour!r}")
    if reference_colour == prompt_colour:
        return PixelLeakage(math.nan, math.nan, math.nan)
    labels = classify_pixels(_as_float_frames(frames), max_distance)
    reference = labels == COLOUR_NAMES.index(reference_colour)
    body = largest_component(labels >= 0)
    object_pixels = body.flatten(1).sum(1).float()
    background_pixels = (~body).flatten(1).sum(1).float()
    in_object = (reference & body).flatten(1).sum(1).float()
    in_background = (reference & ~body).flatten(1).sum(1).float()
    has_object = object_pixels > 0
    object_share = in_object[has_object] / object_pixels[has_object]
    background_share = in_background / background_pixels.clamp(min=1.0)
    return PixelLeakage(
        object_share=float(object_share.mean()) if bool(has_object.any()) else math.nan,
        background_share=float(background_share.mean()),
        worst_frame=float(object_share.max()) if bool(has_object.any()) else math.nan,
    )

