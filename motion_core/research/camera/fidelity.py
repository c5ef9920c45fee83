"""Fidelity of a camera path to a reference clip's own path, with `metrics.motion_fidelity`'s formula, and chance.

Why points: `motion_fidelity` is SSIM's structure term on per-frame velocities of a tracked object's
(x, y, log size). A camera move has four parameters per step (dx, dy, dz, dtheta) in three different units. They
are put on one footing by what the viewer sees: the camera path is turned into the on-screen trajectories of
`POINTS`, scene points that start at fixed places in the first frame. A pan moves them all one way, a zoom pushes
them out from the centre, a roll turns them about it, all in frame widths, so the same noise floor (0.01 of the
frame a step) applies. The point tracks are laid end to end, separated by a NaN row, into one [rows, 3] array: the
NaN rows drop the velocities that would join two tracks, so `motion_fidelity` sums exactly the per-point velocity
products, and its per-step scale factor cancels between numerator and denominator. 1 for the path itself, 0 for
the opposite move (negative, clipped), ~0 for unrelated ones.
"""

from __future__ import annotations

import math
import random

import numpy as np

from ...toy.metrics import motion_fidelity
from .world import MOVES, OPPOSITE, MoveParams, path_steps, poses

# Four scene points on a ring of radius 0.25 frame widths, at the first frame: symmetric, so no direction counts
# more than another; two would already fix a similarity transform.
POINTS = np.array([[0.25, 0.0], [0.0, 0.25], [-0.25, 0.0], [0.0, -0.25]])


def point_tracks(steps: np.ndarray, points: np.ndarray = POINTS) -> np.ndarray:
    """[P, F, 2] on-screen positions (frame widths about the centre) of scene points that start at `points`, as
    the camera follows `steps` ([F - 1, 4]). u = exp(z) R(-theta) (p - c), relative to the first pose."""
    pose = poses(np.asarray(steps, dtype=np.float64))
    scene = points  # the first pose is the identity, so the scene points are where they are first seen
    out = np.empty((len(points), len(pose), 2))
    for t, (cx, cy, z, th) in enumerate(pose):
        d = scene - np.array([cx, cy])
        c, s, k = math.cos(th), math.sin(th), math.exp(z)
        out[:, t, 0] = k * (c * d[:, 0] + s * d[:, 1])
        out[:, t, 1] = k * (-s * d[:, 0] + c * d[:, 1])
    return out


def _resample_steps(steps: np.ndarray, count: int) -> np.ndarray:
    """Per-step path resampled to `count` steps on normalised time, as `metrics` resamples object tracks (via the
    cumulative path, so a clip twice as long with half-size steps is the same motion)."""
    steps = np.asarray(steps, dtype=np.float64)
    if len(steps) == count:
        return steps
    cum = np.vstack([np.zeros((1, 4)), np.cumsum(steps, axis=0)])
    src, dst = np.linspace(0, 1, len(cum)), np.linspace(0, 1, count + 1)
    return np.diff(np.stack([np.interp(dst, src, cum[:, k]) for k in range(4)], axis=1), axis=0)


def stacked_tracks(steps: np.ndarray) -> np.ndarray:
    """[P * (F + 1) - 1, 3]: the point tracks as (x, y, 0) rows, tracks separated by one NaN row."""
    tracks = point_tracks(steps)
    parts = []
    for k, tr in enumerate(tracks):
        if k:
            parts.append(np.full((1, 3), np.nan))
        parts.append(np.column_stack([tr, np.zeros(len(tr))]))
    return np.vstack(parts)


def camera_fidelity(generated_steps: np.ndarray, reference_steps: np.ndarray) -> float:
    """`motion_fidelity` of two per-step camera paths ([F - 1, 4], e.g. from `estimate_path`), via scene points.
    The generated path is resampled onto the reference's number of steps first."""
    ref = np.asarray(reference_steps, dtype=np.float64)
    gen = _resample_steps(generated_steps, len(ref))
    return motion_fidelity(stacked_tracks(gen), stacked_tracks(ref))


def random_camera_paths(exclude: str | None, steps: int, count: int = 64, seed: int = 0) -> list[np.ndarray]:
    """`count` analytic paths of random moves other than `exclude` (random speed, wobble, phase): what an arbitrary
    move of the world scores. Seeded, so the chance level is reproducible."""
    rng = random.Random(f"camera-chance:{exclude}:{seed}")
    others = [m for m in MOVES if m != exclude]
    out = []
    for _ in range(count):
        move = rng.choice(others)
        lo, hi = MOVES[move][1]
        params = MoveParams(rng.uniform(lo, hi), rng.uniform(0.0, 0.5), rng.uniform(0.0, 2.0 * math.pi))
        out.append(path_steps(move, params, steps + 1))
    return out


def random_walk_paths(steps: int, count: int = 64, seed: int = 0, scale: float = 0.05) -> list[np.ndarray]:
    """Camera random walks: every step's (dx, dy, dz, dtheta) i.i.d. normal with std `scale` (a jittery camera)."""
    rng = np.random.default_rng(seed)
    return [rng.normal(0.0, scale, size=(steps, 4)) for _ in range(count)]


def camera_chance(reference_steps: np.ndarray, move: str | None = None, count: int = 64, seed: int = 0) -> float:
    """Mean `camera_fidelity` of random other moves against the reference path: the level a sample must beat."""
    ref = np.asarray(reference_steps)
    return float(np.mean([camera_fidelity(p, ref) for p in random_camera_paths(move, len(ref), count, seed)]))


__all__ = ["POINTS", "OPPOSITE", "camera_chance", "camera_fidelity", "point_tracks", "random_camera_paths",
           "random_walk_paths", "stacked_tracks"]
