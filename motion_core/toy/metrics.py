"""ShapesT2V quality metrics: motion fidelity, appearance accuracy and appearance leakage.

Motion is compared as a trajectory of per-frame velocities (so where the object starts or sits does not matter):

    p_t = (x_t, y_t, SIZE_WEIGHT * log sqrt(area_t))       x, y in canvas units
    v_t = (p_{t+1} - p_t) * (F - 1)                         per unit clip time; g for generated, r for reference

    motion_fidelity = clip( (2 <g, r> + c) / (|g|^2 + |r|^2 + c), 0, 1 ),   c = T * (NOISE_FLOOR * (F - 1))^2

summed over the T frame steps where both objects were found. This is SSIM's structure term applied to motion:
it factors into direction agreement (cosine of g and r) times magnitude agreement (2ab / (a^2 + b^2)), so it is
exactly 1 for the reference itself, 0.8 for the right path at half or double the speed, ~0 for a still object
against a moving reference and for unrelated paths, and negative (clipped to 0) for opposite ones. The constant c,
NOISE_FLOOR of wobble per frame, makes two still clips agree (~1) instead of dividing noise by noise.

Why velocities and not mean-centred positions: a straight move is a ramp in position, and a ramp correlates with any
one-cycle sine (|corr| up to 0.78), so with positions a plain "moves down" scored 0.59 as a zigzag and "moves left"
0.55 as a circle. In velocity a straight move is a constant, nearly orthogonal to the zero-mean periodic families.
The size channel is log size, identical for every shape, scaled by a typical object size so that a grow-shrink
weighs about as much as moving the object's edges by the same distance.

Frame counts may differ: the generated positions are resampled onto the reference's normalised time first.

`family_fidelity` scores a clip against a whole motion family rather than one clip: the best `motion_fidelity`
over a fixed, seeded sample of the family's members (their analytic paths, not renders). The family varies in
phase and rate, which one reference clip cannot cover; taking the best match measures "is this a member of the
family", which is what a LoRA trained on several clips of the family should produce.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np
import torch

from ..errors import InvalidInputError
from .motions import get_motion, sample_params
from .tracking import ObjectTrack

SIZE_WEIGHT = 0.25  # ~ a typical object's bounding-box side in canvas units
NOISE_FLOOR = 0.01  # per-frame wobble (canvas units) treated as "no motion": 0.64 px at 64 px


def trajectory_features(track: ObjectTrack | torch.Tensor | np.ndarray) -> np.ndarray:
    """[F, 3] float64 (x, y, SIZE_WEIGHT * log sqrt(area)); NaN rows where the object was not found.
    A tensor/array input is taken as already being such features."""
    if isinstance(track, ObjectTrack):
        area = track.area.double().numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            size = SIZE_WEIGHT * 0.5 * np.log(area)
        return np.stack([track.x.double().numpy(), track.y.double().numpy(), size], axis=1)
    feats = np.asarray(track.numpy() if isinstance(track, torch.Tensor) else track, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[1] != 3:
        raise InvalidInputError(f"Trajectory features must be shaped [frames, 3]; got {feats.shape}.")
    return feats


def family_member_features(motion: str, params, frames: int) -> np.ndarray:
    """Analytic features of one family member (what the tracker would measure on its render, up to pixels)."""
    xs, ys, scale = get_motion(motion).positions(frames, params)
    return np.stack([xs.double().numpy(), ys.double().numpy(), SIZE_WEIGHT * np.log(scale.double().numpy())], axis=1)


def _resample(feats: np.ndarray, frames: int) -> np.ndarray:
    if feats.shape[0] == frames:
        return feats
    src = np.linspace(0.0, 1.0, feats.shape[0]) if feats.shape[0] > 1 else np.zeros(1)
    dst = np.linspace(0.0, 1.0, frames) if frames > 1 else np.zeros(1)
    out = np.full((frames, 3), np.nan)
    valid = ~np.isnan(feats).any(axis=1)
    if valid.sum() >= 2:
        inside = (dst >= src[valid].min()) & (dst <= src[valid].max())
        for k in range(3):
            out[inside, k] = np.interp(dst[inside], src[valid], feats[valid, k])
    return out


def motion_fidelity(generated, reference, noise_floor: float = NOISE_FLOOR) -> float:
    """Similarity in [0, 1] of two motions, start-position invariant (formula in the module docstring).

    generated, reference: ObjectTracks or [F, 3] feature arrays. Without one pair of consecutive frames where both
    objects were found the score is 0: no motion can be confirmed.
    """
    r = trajectory_features(reference)
    g = _resample(trajectory_features(generated), r.shape[0])
    steps = max(1, r.shape[0] - 1)
    g, r = np.diff(g, axis=0) * steps, np.diff(r, axis=0) * steps
    common = ~(np.isnan(g).any(axis=1) | np.isnan(r).any(axis=1))
    if common.sum() < 1:
        return 0.0
    g, r = g[common], r[common]
    c = common.sum() * (noise_floor * steps) ** 2
    score = (2.0 * float((g * r).sum()) + c) / (float((g * g).sum() + (r * r).sum()) + c)
    return float(min(1.0, max(0.0, score)))


def family_references(motion: str, frames: int, count: int = 48, seed: int = 0, object_size: float = 0.24):
    """A fixed, seeded sample of a family's members as [F, 3] feature arrays."""
    rng = random.Random(f"{motion}:{seed}")
    members = [sample_params(rng, motion, frames, object_size) for _ in range(count)]
    return [family_member_features(motion, params, frames) for params in members]


def family_fidelity(generated, motion: str, references: Sequence[np.ndarray] | None = None, count: int = 48,
                    seed: int = 0) -> float:
    """Best motion_fidelity of `generated` against members of family `motion` (see module docstring)."""
    feats = trajectory_features(generated)
    refs = family_references(motion, feats.shape[0], count, seed) if references is None else references
    return max(motion_fidelity(feats, ref) for ref in refs)


def appearance_accuracy(track: ObjectTrack, prompt_colour: str, prompt_shape: str) -> float:
    """1.0 when the tracked object has the prompt's colour and shape, else 0.0 (batch means give the rate)."""
    return float(track.colour == prompt_colour and track.shape == prompt_shape)


def leakage(track: ObjectTrack, reference_colour: str, reference_shape: str, prompt_colour: str,
            prompt_shape: str) -> float:
    """1.0 when the reference clip's colour or shape shows up although the prompt asked for a different one.

    Only attributes where prompt and reference differ can leak; if they differ in neither, leakage cannot be
    observed and the result is NaN (batch summaries skip it rather than count it as "no leak").
    """
    colour_leak = prompt_colour != reference_colour and track.colour == reference_colour
    shape_leak = prompt_shape != reference_shape and track.shape == reference_shape
    if prompt_colour == reference_colour and prompt_shape == reference_shape:
        return math.nan
    return float(colour_leak or shape_leak)


@dataclass(frozen=True)
class SampleScore:
    """All metrics of one generated clip; NaN where the inputs to a metric were not given or not defined."""

    motion_fidelity: float = math.nan
    family_fidelity: float = math.nan
    appearance_accuracy: float = math.nan
    colour_accuracy: float = math.nan
    shape_accuracy: float = math.nan
    leakage: float = math.nan
    found_fraction: float = math.nan


def score_sample(track: ObjectTrack, prompt_colour: str, prompt_shape: str, reference: ObjectTrack | None = None,
                 motion: str | None = None, reference_colour: str | None = None,
                 reference_shape: str | None = None) -> SampleScore:
    """Score one generated clip's track against its prompt, its reference clip and/or its motion family."""
    leak = math.nan
    if reference_colour is not None and reference_shape is not None:
        leak = leakage(track, reference_colour, reference_shape, prompt_colour, prompt_shape)
    return SampleScore(
        motion_fidelity=motion_fidelity(track, reference) if reference is not None else math.nan,
        family_fidelity=family_fidelity(track, motion) if motion is not None else math.nan,
        appearance_accuracy=appearance_accuracy(track, prompt_colour, prompt_shape),
        colour_accuracy=float(track.colour == prompt_colour),
        shape_accuracy=float(track.shape == prompt_shape),
        leakage=leak,
        found_fraction=track.found_fraction,
    )


def summarize(scores: Sequence[SampleScore]) -> dict[str, float]:
    """Mean of each metric over the samples where it is defined, plus `count` and `<metric>_count`."""
    summary: dict[str, float] = {"count": float(len(scores))}
    for f in fields(SampleScore):
        values = [getattr(s, f.name) for s in scores if not math.isnan(getattr(s, f.name))]
        summary[f.name] = float(np.mean(values)) if values else math.nan
        summary[f"{f.name}_count"] = float(len(values))
    return summary
