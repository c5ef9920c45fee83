"""ShapesT2V shapes as coverage masks, and the fill-ratio signatures the tracker uses to tell them apart.

Every shape fits the same axis-aligned box of side `extent` and is placed by its area centroid, so the tracked
centroid of a rendered object equals the motion path's position and scaling happens about that point (grow-shrink
then moves no centroid). The triangle points up; its centroid sits one third of its height above the base.
"""

from __future__ import annotations

import math

import torch

from ..errors import InvalidInputError

SHAPES: tuple[str, ...] = ("square", "circle", "triangle")

# Area / bounding-box area of the ideal shape: lets the tracker size a template from a measured area.
FILL_RATIO: dict[str, float] = {"square": 1.0, "circle": math.pi / 4.0, "triangle": 0.5}


def extent_for_area(shape: str, area: float) -> float:
    """Bounding-box side (canvas-width units) of the shape whose area is `area` (in squared canvas-width units)."""
    return math.sqrt(max(area, 0.0) / FILL_RATIO[check_shape(shape)])


def check_shape(name: str) -> str:
    if name not in SHAPES:
        raise InvalidInputError(f"Unknown ShapesT2V shape {name!r}; choose one of {', '.join(SHAPES)}.")
    return name


def coverage(
    shape: str, cx: float, cy: float, extent: float, height: int, width: int, supersample: int = 2
) -> torch.Tensor:
    """Fraction of each pixel covered by the shape: float32 [height, width] in 0..1.

    cx, cy: the shape's area centroid in canvas units (0..1 across the width / height); extent: side of its bounding
    box as a fraction of the canvas width. `supersample`² point samples per pixel give a mild antialiasing: enough
    for sub-pixel motion to look smooth, little enough that edge pixels stay close to either object or background.
    """
    check_shape(shape)
    s = max(1, int(supersample))
    # Sample points at sub-pixel centres, in canvas units; the canvas is treated as square in width units so
    # shapes are not stretched on non-square frames.
    ys = (torch.arange(height * s, dtype=torch.float32) + 0.5) / (s * width)
    xs = (torch.arange(width * s, dtype=torch.float32) + 0.5) / (s * width)
    cy_w = cy * height / width
    py, px = ys[:, None] - cy_w, xs[None, :] - cx
    r = extent / 2.0
    if shape == "square":
        inside = (px.abs() <= r) & (py.abs() <= r)
    elif shape == "circle":
        inside = px * px + py * py <= r * r
    else:
        # Apex at 2/3 of the height above the centroid, base 1/3 below; base width = height = extent.
        h = extent
        top, base = -2.0 * h / 3.0, h / 3.0
        # Half-width grows linearly from 0 at the apex to r at the base.
        half_width = r * (py - top) / h
        inside = (py >= top) & (py <= base) & (px.abs() <= half_width)
    cov = inside.float()
    if s > 1:
        cov = cov.reshape(height, s, width, s).mean(dim=(1, 3))
    return cov
