"""A loss plot as an image tensor, drawn with Pillow: the training node's IMAGE output needs no matplotlib.

Each loss term gets its own colour; the y axis is logarithmic when the losses span more than a decade (diffusion
losses fall from ~1 to ~0.05, where a linear axis would flatten the interesting part).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127)]
NOT_LOSSES = ("step", "stage", "lr")


def plot_loss(history: list[dict], width: int = 640, height: int = 360) -> torch.Tensor:
    """uint8 [height, width, 3]: every numeric term of ``history`` (``total`` first) against the step."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    names = _term_names(history)
    if not names:
        draw.text((10, height // 2), "no loss history yet", fill="black")
        return torch.from_numpy(np.asarray(image).copy())
    series = {n: [(h["step"], float(h[n])) for h in history if _finite(h.get(n))] for n in names}
    values = [v for pts in series.values() for _, v in pts]
    steps = [s for pts in series.values() for s, _ in pts]
    log = min(values) > 0 and max(values) / min(values) > 10
    f = math.log10 if log else (lambda v: v)
    lo, hi = f(min(values)), f(max(values))
    lo, hi = (lo - 0.5, hi + 0.5) if hi == lo else (lo, hi)
    s0, s1 = min(steps), max(max(steps), min(steps) + 1)
    left, right, top, bottom = 60, width - 10, 10, height - 40

    def xy(step, value):
        x = left + (step - s0) / (s1 - s0) * (right - left)
        return x, bottom - (f(value) - lo) / (hi - lo) * (bottom - top)

    draw.rectangle([left, top, right, bottom], outline="black")
    for i in range(5):
        y = bottom - i / 4 * (bottom - top)
        value = lo + i / 4 * (hi - lo)
        draw.text((4, y - 6), f"{10 ** value if log else value:.3g}", fill="black")
    draw.text((left, bottom + 6), f"step {s0}", fill="black")
    draw.text((right - 70, bottom + 6), f"step {s1}", fill="black")
    for i, name in enumerate(names):
        colour = COLOURS[i % len(COLOURS)]
        points = [xy(s, v) for s, v in series[name]]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2 if name == "total" else 1)
        elif points:
            x, y = points[0]
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
        draw.text((left + 8 + 110 * i, bottom + 22), name, fill=colour)
    return torch.from_numpy(np.asarray(image).copy())


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _term_names(history: list[dict]) -> list[str]:
    names: dict[str, None] = {}
    for entry in history:
        for key, value in entry.items():
            if key not in NOT_LOSSES and _finite(value):
                names[key] = None
    ordered = sorted(names, key=lambda n: (n != "total", n))
    return ordered
