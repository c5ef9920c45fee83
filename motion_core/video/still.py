"""One still image from disk (the command line's --image start picture), read as safely as video frames are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import InvalidInputError, VideoReadError
from .animated_images import image_problem
from .options import DEFAULT_MAX_PIXELS


def load_still_image(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """An image file -> ComfyUI IMAGE float [1, H, W, 3] in 0..1 (an animated file gives its first frame). The size
    is read from the header and checked before any pixels are decoded."""
    file = Path(path)
    if not file.is_file():
        raise InvalidInputError(f"Start image {str(file)!r} does not exist or is not a file; give the path of a "
                                "PNG, JPEG or WebP picture.")
    try:
        with Image.open(file) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise InvalidInputError(
                    f"Start image {str(file)!r} is {width}x{height} pixels, more than the {max_pixels} allowed; "
                    "scale it down first (it is fitted to the video's size anyway).")
            pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except InvalidInputError:
        raise
    except Exception as error:  # Pillow raises many types on damaged files; all mean "not a usable image"
        raise VideoReadError(f"Start image {str(file)!r} is not a readable image ({image_problem(error)}); "
                             "export it again as PNG or JPEG.") from None
    return torch.from_numpy(pixels.copy()).float().div_(255.0)[None]
