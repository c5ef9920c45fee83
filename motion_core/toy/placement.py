"""Placement of an image-to-video sample: does the clip start where the start image puts the object, and move on
from there?

The motion metrics (metrics.py) forgive where the motion happens: they compare per-frame velocities. A user does
not: a motion LoRA that draws its loop where the reference clip drew it, not where the user's start image puts the
object, shows the object jumping to another place. Per sample, from the tracked centroids (tracking.py):
- start_distance: the first generated frame's centroid against the start image's object centroid (canvas units;
  NaN when frame 0 shows no object);
- placed: start_distance within `tolerance`, the world's fastest per-frame move (base_stability.fastest_step:
  0.085 of the canvas at ShapesWan's 9 frames): the first frame is no further from the image's object than one
  frame of the fastest pretraining motion would carry it;
- attached: placed, the object found in every frame, and no move between neighbouring frames beyond `jump_limit`
  (base_stability's 1.5x, of the fastest pretraining motion or of the reference's own fastest step, the larger):
  the clip starts at the image's object and moves on from there without a jump;
- nearer_reference: the first frame lies nearer the reference clip's first-frame place than the image's (only
  meaningful when the two places differ): the motion was drawn where the reference drew it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .base_stability import JUMP_TOLERANCE
from .tracking import ObjectTrack


@dataclass(frozen=True)
class Placement:
    start_distance: float
    reference_distance: float
    placed: bool
    attached: bool
    nearer_reference: bool


def largest_step(track: ObjectTrack) -> float:
    """The largest centroid move between neighbouring found frames (canvas units; 0 with fewer than two)."""
    both = track.found[1:] & track.found[:-1]
    steps = torch.hypot(track.x.diff(), track.y.diff())[both]
    return float(steps.max()) if steps.numel() else 0.0


def jump_limit(fastest: float, reference: ObjectTrack | None = None) -> float:
    """What `attached` allows between neighbouring frames: 1.5x the faster of the world's fastest per-frame move
    and the reference's own fastest step (a held-out motion can be faster than any pretraining one)."""
    own = largest_step(reference) if reference is not None else 0.0
    return JUMP_TOLERANCE * max(fastest, own)


def placement(track: ObjectTrack, image_xy: tuple[float, float], reference_xy: tuple[float, float],
              tolerance: float, limit: float) -> Placement:
    """One sample's placement: `track` the generated clip's, `image_xy` the start image's object centroid,
    `reference_xy` the reference clip's first-frame centroid (canvas units)."""
    if track.num_frames == 0 or not bool(track.found[0]):
        return Placement(math.nan, math.nan, False, False, False)
    x, y = float(track.x[0]), float(track.y[0])
    start = math.hypot(x - image_xy[0], y - image_xy[1])
    to_reference = math.hypot(x - reference_xy[0], y - reference_xy[1])
    placed = start <= tolerance
    smooth = bool(track.found.all()) and largest_step(track) <= limit
    return Placement(start, to_reference, placed, placed and smooth, to_reference < start)


def summarize(rows: list[Placement]) -> dict:
    """Shares over samples (a sample with no object in frame 0 counts as neither placed nor attached) and the mean
    start distance over the samples whose frame 0 shows an object."""
    n = len(rows)
    if not n:
        return {"placed": math.nan, "attached": math.nan, "start_distance": math.nan, "nearer_reference": math.nan}
    distances = [r.start_distance for r in rows if not math.isnan(r.start_distance)]
    return {"placed": sum(r.placed for r in rows) / n, "attached": sum(r.attached for r in rows) / n,
            "start_distance": sum(distances) / len(distances) if distances else math.nan,
            "nearer_reference": sum(r.nearer_reference for r in rows) / n}
