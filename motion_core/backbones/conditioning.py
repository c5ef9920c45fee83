"""The start image: how an image-to-video backbone is told which picture a clip begins with.

Why a held condition rather than an extra argument to ``denoise``: every recipe, the trainer, the sampler, the noise
prior and the memory planner call ``denoise`` the same way; an image-to-video model needs the same image for every one
of those calls of one clip. So the caller states it once (``with backbone.conditioned(condition):``) and every
``denoise`` inside reads it; recipes stay the same for text-to-video and image-to-video models (METHODS.md: I2V is a
mode of the backbone, not a branch of each recipe).

``start_image`` says what a family does with one: "none" (text-to-video only), "optional" (a model that does both,
Wan 2.2 TI2V 5B) or "required" (an image-to-video model: Wan 2.1 I2V, Wan 2.2 I2V A14B).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import torch

from ..errors import InvalidInputError

START_IMAGE_MODES = ("none", "optional", "required")


class StartImageSupport:
    """Mixed into Backbone. Families that take a start image override ``start_image`` and the three methods."""

    condition: Any = None
    """The condition ``denoise`` reads now (set by ``conditioned``); None: none given."""

    @property
    def start_image(self) -> str:
        return "none"

    def encode_start_image(self, image: torch.Tensor, frames: int, width: int, height: int) -> Any:
        """An image float [H, W, 3] (or [1, H, W, 3]) in 0..1 -> the condition of a clip of ``frames`` frames at
        ``width`` x ``height`` (the image is fitted by scaling and a centre crop)."""
        raise InvalidInputError(
            f"This {getattr(self, 'family', '')} model is text-to-video and takes no start image. Leave the start "
            "image empty, or load an image-to-video model (Wan 2.1 I2V, Wan 2.2 I2V A14B or Wan 2.2 TI2V 5B)."
        )

    def blank_condition(self, latents: torch.Tensor) -> Any:
        """A condition of the right shapes for ``latents`` that shows no image (what the memory planner traces
        with; the values do not matter there). None for families without a start image."""
        return None

    def without_image(self, condition: Any) -> Any:
        """The condition of the same clip that shows no start image: what paths without the clip's own frames see
        (a concat model's mask 0 and gray image latents), used by training's start_image_dropout. None (no
        condition at all) for families where the image is optional or absent."""
        return None

    def finish_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """The sampled latents as they are decoded: a family that keeps the given first frame clean writes it
        back here. Identity otherwise."""
        return latents

    @contextmanager
    def conditioned(self, condition: Any):
        """Every ``denoise`` inside the block sees ``condition`` (None: no start image)."""
        previous = self.condition
        self.condition = condition
        try:
            yield self
        finally:
            self.condition = previous


def single_image(image: Any) -> torch.Tensor:
    """A start image as float [H, W, 3] in 0..1 from ComfyUI's IMAGE ([1, H, W, 3|4]) or a bare [H, W, 3|4]; the
    first image of a batch is taken (a clip starts from one picture)."""
    if not isinstance(image, torch.Tensor) or image.ndim not in (3, 4) or image.shape[-1] not in (3, 4):
        raise InvalidInputError(
            "The start image must be an IMAGE [1, height, width, 3] (or [height, width, 3]) with values in 0..1; got "
            f"{type(image).__name__} of shape {tuple(getattr(image, 'shape', ()))}. Connect a Load Image node."
        )
    if not image.is_floating_point():
        raise InvalidInputError(f"The start image must be float in 0..1 (ComfyUI IMAGE); got {image.dtype}.")
    picture = (image[0] if image.ndim == 4 else image)[..., :3].float()
    if picture.shape[0] < 2 or picture.shape[1] < 2:
        raise InvalidInputError(f"The start image is {picture.shape[1]}x{picture.shape[0]} pixels: too small to use.")
    if not bool(torch.isfinite(picture).all()):
        raise InvalidInputError("The start image holds NaN or infinite values; load it again from a file.")
    return picture.clamp(0.0, 1.0)
