"""Is an image-to-video sample's first frame the user's picture, background included?

placement.py reads where the object is; the look measures (metrics.py) read the object's colour and shape. Neither
sees the rest of the picture: looked at, a motion LoRA trained on one clip can open on the reference's own background
with the picture's object colour, and every object measure passes. Per sample, frame 0 against the start image, every
pixel (RGB in 0..1):
- start_frame_error: the mean absolute difference;
- start_frame_kept: the share of pixels whose largest channel difference is within PIXEL_TOLERANCE.
"""

from __future__ import annotations

import torch

PIXEL_TOLERANCE = 0.1
"""A tenth of the range: a pixel redrawn with the VAE's round-trip error (~0.01-0.03 on this world) still counts as
kept; one of another palette colour or background (differences of 0.2 and more) does not."""


def start_frame_scores(frames, image) -> dict:
    """frames: [F, H, W, 3] and image: [H, W, 3] (or [1, H, W, 3]), both in 0..1."""
    first = torch.as_tensor(frames)[0].float()
    picture = torch.as_tensor(image).float().reshape(first.shape)
    difference = (first - picture).abs()
    return {"start_frame_error": float(difference.mean()),
            "start_frame_kept": float((difference.amax(dim=-1) <= PIXEL_TOLERANCE).float().mean())}
