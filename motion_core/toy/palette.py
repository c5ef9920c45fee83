"""ShapesT2V colours and backgrounds: chosen so that colour segmentation stays easy even in noisy generated video.

The six object colours are saturated or bright and at least ~0.45 apart (Euclidean RGB in 0..1) from one another and
~0.6 from every background; the backgrounds are dark or mid greys with low saturation. A generated pixel that lands
within ~0.3 of a palette colour is therefore unambiguous, which is what `tracking` relies on.
"""

from __future__ import annotations

import torch

from ..errors import InvalidInputError

# name -> RGB in 0..1. Order is stable: it is the class index used by the tracker.
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.12, 0.12),
    "green": (0.15, 0.80, 0.22),
    "blue": (0.15, 0.32, 0.96),
    "yellow": (0.95, 0.88, 0.12),
    "white": (0.97, 0.97, 0.97),
    "purple": (0.68, 0.20, 0.88),
}

# Plain backgrounds are one grey; "texture" is a smooth, static, low-contrast grey noise (see `render`).
BACKGROUNDS: dict[str, tuple[float, float, float]] = {
    "black": (0.07, 0.07, 0.07),
    "grey": (0.36, 0.36, 0.36),
    "texture": (0.20, 0.20, 0.20),
}

# Half-range of the texture's grey levels around its base colour; small enough that no textured pixel gets near
# a palette colour (closest: blue/purple, ~0.6 away).
TEXTURE_CONTRAST = 0.09


def palette_tensor() -> torch.Tensor:
    """[K, 3] float32 RGB of COLOURS in their declared order."""
    return torch.tensor(list(COLOURS.values()), dtype=torch.float32)


def colour_rgb(name: str) -> torch.Tensor:
    if name not in COLOURS:
        raise InvalidInputError(f"Unknown ShapesT2V colour {name!r}; choose one of {', '.join(COLOURS)}.")
    return torch.tensor(COLOURS[name], dtype=torch.float32)
