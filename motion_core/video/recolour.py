"""Hue rotation of whole clips: the same motion shown in other colours (image-to-video training's recolour option).

A rotation about the RGB cube's gray axis turns every hue by the same angle and leaves grays (and so black, white
and gray backgrounds) and each pixel's brightness sum unchanged; 120 and 240 degrees are exact channel permutations.
"""

from __future__ import annotations

import math

import torch


def hue_rotation(degrees: float) -> torch.Tensor:
    """The 3x3 matrix that turns RGB colours by ``degrees`` about the gray axis (Rodrigues' formula)."""
    a = math.radians(float(degrees))
    c, s = math.cos(a), math.sin(a)
    k = 1.0 / math.sqrt(3.0)
    axis = torch.tensor([k, k, k], dtype=torch.float64)
    cross = torch.tensor([[0.0, -k, k], [k, 0.0, -k], [-k, k, 0.0]], dtype=torch.float64)
    return (c * torch.eye(3, dtype=torch.float64) + s * cross + (1 - c) * torch.outer(axis, axis)).float()


def rotate_hue(frames: torch.Tensor, degrees: float) -> torch.Tensor:
    """Frames float [..., 3] in 0..1 with every hue turned by ``degrees`` (clamped back into 0..1)."""
    matrix = hue_rotation(degrees).to(frames.device)
    return (frames.float() @ matrix.T).clamp(0.0, 1.0).to(frames.dtype)


def recolour_angles(copies: int) -> list[float]:
    """Evenly spread angles for ``copies`` recoloured copies (2 copies: 120 and 240 degrees, the exact ones)."""
    return [360.0 * (i + 1) / (copies + 1) for i in range(int(copies))]
