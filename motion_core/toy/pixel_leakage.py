"""Leakage as a user sees it: the share of a sample's pixels that carry the reference clip's colour.

The clip-level leakage in metrics.py counts a sample only when the reference's colour wins the object's majority
vote, so a yellow square with red patches in several frames counts as clean. Here every frame is measured.

What a viewer calls "the reference's red" is a hue, not an RGB point: generated patches are often dim or brownish
(e.g. (0.6, 0.3, 0.15), 0.35 or more from the palette's red in RGB, which the tracker's nearest-colour rule leaves
unlabelled) yet plainly red-orange on a green triangle. So a pixel is in the reference's colour when its hue is
within HUE_WINDOW degrees of the reference's (never past halfway to another palette colour's hue) and it is clearly
coloured and visible (HSV saturation >= MIN_SATURATION, value >= MIN_VALUE); for an achromatic reference (white),
the tracker's RGB rule alone. The thresholds were set on a negative control: the base model, which never saw the
reference, draws purple-yellow blends that turn pink (saturation 0.3-0.45) and mauve halos (0.4) that a viewer does
not read as the reference's red; the DeT samples' red-orange patches sit at saturation 0.5-0.75. A pixel is
*tinted* (part of some object, whatever its colour) when its chroma is at least MIN_CHROMA (backgrounds are greys).
The object is the largest 8-connected region of palette-labelled or tinted pixels (patches of
another colour on it belong to it), the background is everything else. Per frame: the share of the object's pixels,
and of the background's, in the reference's colour; the clip's figure is the mean over frames (frames without an
object count for the background only). Undefined (NaN) where the prompt asks for the reference's own colour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .palette import COLOURS
from .tracking import COLOUR_NAMES, _as_float_frames, classify_pixels, largest_component

MIN_CHROMA = 0.15
"""Chroma (max - min channel, 0..1) from which a pixel belongs to an object: the backgrounds are greys (texture noise
±0.09 around a grey keeps chroma near 0)."""
HUE_WINDOW = 25.0
MIN_SATURATION = 0.5
MIN_VALUE = 0.3


def _hue_and_chroma(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hue in degrees [0, 360) and chroma of RGB values in 0..1 ([..., 3])."""
    high, _ = rgb.max(-1)
    low, _ = rgb.min(-1)
    chroma = high - low
    r, g, b = rgb.unbind(-1)
    safe = chroma.clamp(min=1e-6)
    sector = torch.where(high == r, ((g - b) / safe) % 6,
                         torch.where(high == g, (b - r) / safe + 2, (r - g) / safe + 4))
    return (sector * 60.0) % 360.0, chroma


def _in_colour_by_hue(frames: torch.Tensor, colour: str) -> torch.Tensor | None:
    """[F, H, W] bool: visible, clearly coloured pixels within the hue window of ``colour``; None for an
    achromatic colour."""
    names = [n for n, rgb in COLOURS.items() if _hue_and_chroma(torch.tensor(rgb))[1] >= 0.3]
    if colour not in names:
        return None
    hues = {n: float(_hue_and_chroma(torch.tensor(COLOURS[n]))[0]) for n in names}
    target = hues[colour]

    def apart(a: float, b: float) -> float:
        return min(abs(a - b), 360.0 - abs(a - b))
    window = min(HUE_WINDOW, 0.5 * min(apart(target, h) for n, h in hues.items() if n != colour))
    hue, chroma = _hue_and_chroma(frames)
    value, _ = frames.max(-1)
    gap = (hue - target).abs()
    near = torch.minimum(gap, 360.0 - gap) <= window
    return near & (chroma >= MIN_SATURATION * value) & (value >= MIN_VALUE)


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
    frames = _as_float_frames(frames)
    labels = classify_pixels(frames, max_distance)
    reference = labels == COLOUR_NAMES.index(reference_colour)
    by_hue = _in_colour_by_hue(frames, reference_colour)
    if by_hue is not None:
        reference = reference | by_hue
    body = largest_component((labels >= 0) | (_hue_and_chroma(frames)[1] >= MIN_CHROMA))
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

