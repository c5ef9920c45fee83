"""Translation of whole clips: the same motion starting from other places (image-to-video training's shift_copies).

Every frame moves by the same (dx, dy), so the path relative to the start is the reference's own; what moves is
where the start image puts the subject. The uncovered border repeats the clip's edge pixels (a still background stays
one), never wraps: a wrapped border would carry part of the subject to the opposite side. Flips are left out on
purpose: a mirrored clip shows the mirrored motion, which would teach the wrong path.
"""

from __future__ import annotations

import math

import torch

SHIFT_FRACTION = 0.125
"""How far a copy moves, as a share of the frame's shorter side: far enough that the start image's subject sits
somewhere new (8 px, one latent cell of an 8x VAE, on the built-in 64 px world), near enough that a subject moving
inside the frame mostly stays in it."""


def shift_offsets(copies: int, width: int, height: int) -> list[tuple[int, int]]:
    """(dx, dy) in whole pixels for ``copies`` shifted copies: evenly spread directions (starting on a diagonal, so
    one or two copies move along both axes) at SHIFT_FRACTION of the shorter side."""
    radius = SHIFT_FRACTION * min(int(width), int(height))
    out = []
    for k in range(int(copies)):
        angle = math.radians(45.0 + 360.0 * k / int(copies))
        out.append((round(radius * math.cos(angle)), round(radius * math.sin(angle))))
    return out


def shift_clip(frames: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """Frames [F, H, W, C] moved right by ``dx`` and down by ``dy`` pixels (negative: left / up); the uncovered
    border repeats the nearest edge pixel of each frame. Same shape and dtype."""
    height, width = frames.shape[1], frames.shape[2]
    rows = (torch.arange(height, device=frames.device) - int(dy)).clamp(0, height - 1)
    cols = (torch.arange(width, device=frames.device) - int(dx)).clamp(0, width - 1)
    return frames.index_select(1, rows).index_select(2, cols)
