"""Bring frames to the training size: keep aspect, then center-crop ("crop") or letterbox with black ("pad")."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InvalidInputError

RESIZE_MODES = ("crop", "pad")


def output_size(source_width: int, source_height: int, width: int, height: int) -> tuple[int, int]:
    """(width, height) of the clip. 0 keeps the source size; one 0 follows the aspect, rounded to a multiple of 8."""
    for name, value in (("width", width), ("height", height)):
        if value < 0 or value % 8:
            lower, upper = value // 8 * 8, value // 8 * 8 + 8
            raise InvalidInputError(
                f"{name}={value} is not a multiple of 8 (video models work on 8x smaller latents). Use "
                f"{max(lower, 8)} or {upper}, or 0 to keep the source {name}."
            )
    if width == 0 and height == 0:
        return source_width, source_height
    if width == 0:
        width = max(8, round(source_width * height / source_height / 8) * 8)
    if height == 0:
        height = max(8, round(source_height * width / source_width / 8) * 8)
    return width, height


def fit_frame(frame: np.ndarray, width: int, height: int, mode: str = "crop") -> torch.Tensor:
    """uint8 [H, W, 3] -> uint8 [height, width, 3]. Antialiased bilinear, so downscaling does not alias motion."""
    if mode not in RESIZE_MODES:
        raise InvalidInputError(f"resize_mode must be one of {RESIZE_MODES}; got {mode!r}.")
    # Pillow hands out read-only arrays; torch wants a writable buffer.
    image = torch.from_numpy(np.require(frame, dtype=np.uint8, requirements=["C", "W"]))
    source_height, source_width = image.shape[:2]
    if (source_width, source_height) == (width, height):
        return image
    fit = max if mode == "crop" else min
    scale = fit(width / source_width, height / source_height)
    scaled_w = max(1, round(source_width * scale))
    scaled_h = max(1, round(source_height * scale))
    if mode == "crop":
        scaled_w, scaled_h = max(scaled_w, width), max(scaled_h, height)
    else:
        scaled_w, scaled_h = min(scaled_w, width), min(scaled_h, height)
    scaled = _resize(image, scaled_w, scaled_h)
    if mode == "crop":
        top, left = (scaled_h - height) // 2, (scaled_w - width) // 2
        return scaled[top : top + height, left : left + width].contiguous()
    canvas = torch.zeros((height, width, 3), dtype=torch.uint8)
    top, left = (height - scaled_h) // 2, (width - scaled_w) // 2
    canvas[top : top + scaled_h, left : left + scaled_w] = scaled
    return canvas


def _resize(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    if image.shape[:2] == (height, width):
        return image
    chw = image.permute(2, 0, 1).unsqueeze(0).float()
    out = F.interpolate(chw, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return out.squeeze(0).permute(1, 2, 0).round_().clamp_(0, 255).to(torch.uint8)
