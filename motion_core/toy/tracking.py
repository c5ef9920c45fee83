"""Track the ShapesT2V object in a clip from its pixels: trajectory, size, colour and shape.

Per frame: estimate the background as the frame's median colour (objects cover well under half the canvas), label
each pixel with its nearest palette colour when that colour is within `max_distance` and nearer than the
background, keep the largest 8-connected blob of the chosen colour, and measure it. Per clip, colour and shape are
majority votes over frames, so a few bad frames of a noisy generated video do not flip them. Frames where nothing
is found have NaN position and size and are left out by the metrics.

Shape is the best-fitting template: each shape is drawn with the blob's centroid and area, and the one with the
highest intersection-over-union wins. Centroid and area average over the whole blob, so unlike bounding-box fill
ratios they do not swing with the ragged edge pixels that noise produces (measured: bbox fill ratios called ~8% of
noisy squares circles; templates none).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..clips import Clip
from ..errors import InvalidInputError
from .palette import COLOURS, palette_tensor
from .shapes import SHAPES, coverage, extent_for_area

COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)


@dataclass(frozen=True)
class ObjectTrack:
    """What the tracker saw. x, y: centroid in 0..1 of width/height; area: fraction of the frame; all float32 [F],
    NaN where not found. frame_shapes: per-frame shape or None. colour/shape: the clip-level votes (None if the
    object was never found)."""

    x: torch.Tensor
    y: torch.Tensor
    area: torch.Tensor
    found: torch.Tensor
    frame_shapes: tuple[str | None, ...]
    colour: str | None
    shape: str | None

    @property
    def num_frames(self) -> int:
        return int(self.x.shape[0])

    @property
    def found_fraction(self) -> float:
        return float(self.found.float().mean())


def _as_float_frames(frames) -> torch.Tensor:
    if isinstance(frames, Clip):
        frames = frames.frames
    if hasattr(frames, "__array__") and not isinstance(frames, torch.Tensor):
        frames = torch.as_tensor(frames)  # a NumPy array (e.g. imageio's frames) tracks the same
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[-1] < 3:
        raise InvalidInputError(
            f"Tracking needs frames [F, H, W, 3]; got shape {tuple(getattr(frames, 'shape', ()))}."
        )
    frames = frames[..., :3].detach().cpu()
    if frames.dtype == torch.uint8:
        return frames.float() / 255.0
    return frames.float().clamp(0.0, 1.0)


def classify_pixels(frames: torch.Tensor, max_distance: float = 0.35) -> torch.Tensor:
    """int64 [F, H, W]: palette index of each pixel, or -1 for background / unmatched."""
    pal = palette_tensor()
    flat = frames.reshape(frames.shape[0], -1, 3)
    background = flat.median(dim=1).values  # [F, 3]
    d_pal = torch.cdist(flat, pal.expand(flat.shape[0], -1, -1))  # [F, N, K]
    d_min, idx = d_pal.min(dim=-1)
    d_bg = (flat - background[:, None, :]).norm(dim=-1)
    labels = torch.where((d_min < max_distance) & (d_min < d_bg), idx, torch.full_like(idx, -1))
    return labels.reshape(frames.shape[:3])


def largest_component(mask: torch.Tensor) -> torch.Tensor:
    """Keep the largest 8-connected component of each frame's mask ([F, H, W] bool).

    Label propagation with max-pooling: every foreground pixel starts with a unique id and repeatedly takes the
    largest id in its 3x3 neighbourhood inside the mask until nothing changes; cheap at toy resolutions and free of
    a SciPy dependency.
    """
    f, h, w = mask.shape
    ids = torch.arange(1, h * w + 1, dtype=torch.float32).reshape(1, h, w).expand(f, h, w)
    labels = torch.where(mask, ids, torch.zeros_like(ids))
    for _ in range(h * w):
        new = torch.where(mask, F.max_pool2d(labels[:, None], 3, stride=1, padding=1)[:, 0], labels)
        if torch.equal(new, labels):
            break
        labels = new
    keep = torch.zeros_like(mask)
    for i in range(f):
        values = labels[i][mask[i]]
        if values.numel():
            ids_, counts = values.unique(return_counts=True)
            keep[i] = labels[i] == ids_[counts.argmax()]
    return keep


def classify_shape(mask: torch.Tensor, cx: float, cy: float, area: float) -> str:
    """Shape whose template (same centroid and area as the blob, in canvas units) overlaps `mask` [H, W] best."""
    h, w = mask.shape
    area_w = area * h / w  # fraction of H*W pixels -> squared canvas-width units

    def iou(name):
        template = coverage(name, cx, cy, extent_for_area(name, area_w), h, w, supersample=1) > 0.5
        union = int((template | mask).sum())
        return int((template & mask).sum()) / union if union else 0.0

    return max(SHAPES, key=iou)


def track_object(frames, colour: str | None = None, max_distance: float = 0.35, min_area: float = 0.002) -> ObjectTrack:
    """Track one object in `frames` (uint8 or float [F, H, W, 3], or a Clip).

    colour: follow the object of this palette colour (for two-object clips); by default the colour with the most
    pixels over the clip, i.e. the dominant object. min_area: blobs smaller than this fraction of the frame count as
    not found (speckle from noise).
    """
    frames = _as_float_frames(frames)
    n, h, w, _ = frames.shape
    labels = classify_pixels(frames, max_distance)
    if colour is None:
        counts = torch.bincount(labels[labels >= 0].flatten(), minlength=len(COLOUR_NAMES))
        colour_idx = int(counts.argmax()) if int(counts.sum()) > 0 else -1
    else:
        if colour not in COLOURS:
            raise InvalidInputError(f"Unknown ShapesT2V colour {colour!r}; choose one of {', '.join(COLOURS)}.")
        colour_idx = COLOUR_NAMES.index(colour)
    nan = torch.full((n,), float("nan"))
    if colour_idx < 0:
        return ObjectTrack(nan, nan.clone(), nan.clone(), torch.zeros(n, dtype=torch.bool), (None,) * n, None, None)
    mask = largest_component(labels == colour_idx)
    x, y, area = nan.clone(), nan.clone(), nan.clone()
    found = torch.zeros(n, dtype=torch.bool)
    shapes: list[str | None] = [None] * n
    grid_y = (torch.arange(h, dtype=torch.float32) + 0.5)[:, None].expand(h, w)
    grid_x = (torch.arange(w, dtype=torch.float32) + 0.5)[None, :].expand(h, w)
    for i in range(n):
        m = mask[i]
        count = int(m.sum())
        if count < max(1, min_area * h * w):
            continue
        px, py = grid_x[m], grid_y[m]
        cx, cy = float(px.mean()), float(py.mean())
        x[i], y[i], area[i] = cx / w, cy / h, count / (h * w)
        found[i] = True
        shapes[i] = classify_shape(m, cx / w, cy / h, count / (h * w))
    votes = Counter(s for s in shapes if s is not None)
    shape = votes.most_common(1)[0][0] if votes else None
    return ObjectTrack(x, y, area, found, tuple(shapes), COLOUR_NAMES[colour_idx] if votes else None, shape)
