"""The pretraining set: seeded ClipSpecs of the basic motions only, rendered once into memory."""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from ..motions import BASIC_MOTIONS
from ..render import background_image, render_frames, sample_spec
from .architecture import FPS, FRAME_SIZE, NUM_FRAMES

COMPANION_PROBABILITY = 0.15
# A pixel counts as object when it differs from the clip's own background by more than this (0..1 scale, any channel).
OBJECT_THRESHOLD = 0.05


def pretraining_specs(count: int, seed: int, frames: int = NUM_FRAMES):
    rng = random.Random(seed)
    return [sample_spec(rng, motions=BASIC_MOTIONS, frames=frames, size=FRAME_SIZE, fps=FPS,
                        companion_probability=COMPANION_PROBABILITY) for _ in range(count)]


def render_dataset(specs, progress=None) -> tuple[torch.Tensor, list[str]]:
    """float16 frames [N, F, H, W, 3] in 0..1 (half the memory of float32; exact enough for 8-bit colours)."""
    frames = specs[0].frames if specs else NUM_FRAMES
    clips = torch.empty(len(specs), frames, FRAME_SIZE, FRAME_SIZE, 3, dtype=torch.float16)
    for i, spec in enumerate(specs):
        clips[i] = render_frames(spec).half()
        if progress:
            progress(i + 1, len(specs))
    return clips, [spec.text() for spec in specs]


def object_pixels(specs, frames: torch.Tensor) -> torch.Tensor:
    """bool [N, F, H, W]: the pixels where an object is drawn, read from the rendered frames against each clip's own
    background (companions count too: the caption names them), so it is exact for any shape or motion."""
    n, f, h, w, _ = frames.shape
    out = torch.empty(n, f, h, w, dtype=torch.bool)
    for i, spec in enumerate(specs):
        bg = background_image(spec.background, h, w, spec.seed)
        out[i] = (frames[i].float() - bg).abs().amax(-1) > OBJECT_THRESHOLD
    return out


def object_masks(objects: torch.Tensor, grid: int) -> torch.Tensor:
    """float16 [N, F, grid, grid] from `object_pixels`: 1 on every latent cell that an object touches, or that
    borders one, else 0. The one-cell border also covers where an edge is drawn slightly off."""
    n, f = objects.shape[:2]
    cells = F.adaptive_max_pool2d(objects.reshape(n * f, 1, *objects.shape[2:]).float(), grid)
    return F.max_pool2d(cells, 3, stride=1, padding=1).reshape(n, f, grid, grid).half()
