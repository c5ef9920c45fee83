"""Animated GIF and WebP through Pillow: frames are composited one seek at a time, with per-frame delays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import VideoReadError
from .formats import ANIMATED_IMAGE
from .source import DecodeStopped, FrameSource, SourceFrame

# Cut files make Pillow's plugins fail with many types (OSError "truncated", struct.error, IndexError, SyntaxError),
# so every exception there means "the file is broken here".
_PILLOW_DECODE_ERRORS = Exception

# Browsers play GIF delays under 20 ms (and missing ones) as 100 ms; we read them the way users saw them.
_DEFAULT_DELAY_MS = 100.0


def open_animated_image(path: Path) -> FrameSource:
    try:
        image = Image.open(path)
        image.load()
    except _PILLOW_DECODE_ERRORS as error:
        raise VideoReadError(
            f"{str(path)!r} is not a readable {path.suffix.lower().lstrip('.')} image ({image_problem(error)}). "
            "It may be truncated or another kind of file renamed; re-export it."
        ) from None
    delay = _delay_ms(image)
    return FrameSource(
        path=path,
        kind=ANIMATED_IMAGE,
        width=image.width,
        height=image.height,
        fps=1000.0 / delay,
        # n_frames scans the whole file (and fails on truncated GIFs), so the count is left unknown up front.
        frame_count=None,
        _frames=_frames(image, delay),
        _close=image.close,
    )


def image_problem(error: Exception) -> str:
    """Pillow's errors in the user's words; its raw text (struct offsets, plugin names) stays out of messages."""
    if isinstance(error, FileNotFoundError):
        return "it does not exist"
    if isinstance(error, PermissionError):
        return "permission denied"
    if type(error).__name__ == "DecompressionBombError":
        return "its frames are too large to decode safely"
    if type(error).__name__ == "UnidentifiedImageError":
        return "its contents are not an image"
    return "it is cut short or damaged"


def _delay_ms(image, fallback: float = _DEFAULT_DELAY_MS) -> float:
    delay = image.info.get("duration") or 0
    return float(delay) if delay >= 20 else fallback


def _frames(image, first_delay: float):
    index, time = 0, 0.0
    while True:
        try:
            rgb = image.convert("RGB")
        except _PILLOW_DECODE_ERRORS as error:
            raise DecodeStopped(f"Pillow: {error or type(error).__name__}") from None
        yield SourceFrame(index, time, lambda rgb=rgb: np.asarray(rgb, dtype=np.uint8))
        # WebP frames after the first do not carry their delay in Pillow 13; the first one stands for all.
        time += _delay_ms(image, fallback=first_delay) / 1000.0
        index += 1
        try:
            image.seek(index)
        except EOFError:
            return
        except _PILLOW_DECODE_ERRORS as error:
            raise DecodeStopped(f"Pillow: {error or type(error).__name__}") from None
