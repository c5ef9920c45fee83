"""The pretraining set: seeded ClipSpecs of the basic motions only, rendered once into memory."""

from __future__ import annotations

import random

import torch

from ..motions import BASIC_MOTIONS
from ..render import render_frames, sample_spec
from .architecture import FPS, FRAME_SIZE, NUM_FRAMES

COMPANION_PROBABILITY = 0.15


def pretraining_specs(count: int, seed: int):
    rng = random.Random(seed)
    return [sample_spec(rng, motions=BASIC_MOTIONS, frames=NUM_FRAMES, size=FRAME_SIZE, fps=FPS,
                        companion_probability=COMPANION_PROBABILITY) for _ in range(count)]


def render_dataset(specs, progress=None) -> tuple[torch.Tensor, list[str]]:
    """float16 frames [N, F, H, W, 3] in 0..1 (half the memory of float32; exact enough for 8-bit colours)."""
    clips = torch.empty(len(specs), NUM_FRAMES, FRAME_SIZE, FRAME_SIZE, 3, dtype=torch.float16)
    for i, spec in enumerate(specs):
        clips[i] = render_frames(spec).half()
        if progress:
            progress(i + 1, len(specs))
    return clips, [spec.text() for spec in specs]
