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

The primary fidelity is `reference_fidelity`: `motion_fidelity` against the reference clip's OWN tracked path.
A motion LoRA is asked to copy that clip's motion, so that clip's path is the target. What a prompt may legitimately
change is the look (colour, shape, hence area: a constant offset of log size, which velocities cancel) and where the
object starts (velocities again); the frame count may differ and is resampled onto the reference's normalised time.
Nothing else is forgiven: no best match over phases, speeds or family members. With several reference clips (a
three-shot LoRA) the score is the best over those clips only, since matching any one of the clips it was trained
on is transfer.

A fidelity means little without the score of something that did NOT learn the motion, measured on the same data:
- `random_path_chance`: random members (random params) of random OTHER families of the world, scored against the
  same reference clips, mean. This is what an arbitrary motion of the world scores.
- the base model (no LoRA) sampled from the same prompts, seeds and noise prior: the quality bench's base row.
  With a noise prior the start noise itself carries some of the reference's motion, so this is the level a LoRA
  has to beat.

`family_fidelity` is a SECONDARY score: the best `motion_fidelity` over a fixed, seeded sample of 48 members of the
family (analytic paths, other starts, rates and phases). It asks "is this some member of the family", but a maximum
over 48 differently timed targets rewards any wobble that happens to line up with one of them: random walks score
~0.21 on it against ~0.05 on `reference_fidelity` (tests/test_toy_metrics.py), which is about what the base model
scored on it (0.20-0.26). It was the README's headline figure until issue #22 and must not be read as transfer.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np
import torch

from ..errors import InvalidInputError
from .motions import MOTIONS, UNSEEN_MOTIONS, get_motion, sample_params
from .pixel_leakage import PixelLeakage, pixel_leakage
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


def reference_fidelity(generated, reference) -> float:
    """The primary fidelity: how well `generated` reproduces the reference clip's own motion (module docstring).

    reference: the reference clip's ObjectTrack (or [F, 3] features), or a sequence of them for a multi-shot LoRA,
    in which case the best over those clips counts. Frame counts may differ (resampled); nothing else is searched.
    """
    refs = _as_reference_list(reference)
    return max(motion_fidelity(generated, ref) for ref in refs)


def _as_reference_list(reference) -> list:
    """One reference or a non-empty sequence of them, as a list; a bare [F, 3] array counts as one reference."""
    if isinstance(reference, (ObjectTrack, torch.Tensor, np.ndarray)):
        return [reference]
    refs = list(reference)
    if not refs:
        raise InvalidInputError("reference_fidelity needs at least one reference track.")
    return refs


def chance_pool(exclude: str) -> list[str]:
    """The families random paths are drawn from: every family but `exclude`, without the unseen ones (added later;
    leaving them out keeps every chance level measured before them unchanged)."""
    return [m for m in MOTIONS if m != exclude and m not in UNSEEN_MOTIONS]


def random_world_paths(exclude: str, frames: int, count: int = 64, seed: int = 0,
                       object_size: float = 0.24) -> list[np.ndarray]:
    """`count` analytic paths of the world that are NOT family `exclude`: a random other family (basic or held out,
    `still` included) with random params each. Seeded, so a chance level is reproducible."""
    rng = random.Random(f"chance:{exclude}:{seed}")
    others = chance_pool(exclude)
    paths = []
    for _ in range(count):
        motion = rng.choice(others)
        paths.append(family_member_features(motion, sample_params(rng, motion, frames, object_size), frames))
    return paths


def random_path_chance(reference, motion: str, count: int = 64, seed: int = 0) -> float:
    """Chance level of `reference_fidelity`: its mean over random paths of other families against the same
    reference(s). A sample that does not beat this did not carry the reference's motion."""
    refs = _as_reference_list(reference)
    frames = trajectory_features(refs[0]).shape[0]
    return float(np.mean([reference_fidelity(path, refs) for path in random_world_paths(motion, frames, count, seed)]))


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
    reference_fidelity: float = math.nan
    family_fidelity: float = math.nan
    appearance_accuracy: float = math.nan
    colour_accuracy: float = math.nan
    shape_accuracy: float = math.nan
    leakage: float = math.nan
    found_fraction: float = math.nan
    pixel_leakage: float = math.nan
    """Share of the object's pixels in the reference's colour, mean over frames (pixel_leakage.py)."""
    pixel_leakage_background: float = math.nan
    """Share of the background's pixels in the reference's colour, mean over frames."""


def score_sample(track: ObjectTrack, prompt_colour: str, prompt_shape: str, reference=None,
                 motion: str | None = None, reference_colour: str | None = None,
                 reference_shape: str | None = None, frames=None) -> SampleScore:
    """Score one generated clip's track against its prompt, its reference clip(s) and/or its motion family.

    reference: one track or a sequence of tracks (multi-shot). motion_fidelity is against the first reference,
    reference_fidelity the best over all of them (the primary figure); family_fidelity the secondary one. With the
    sample's ``frames`` and a ``reference_colour``, the per-pixel leakage too."""
    refs = _as_reference_list(reference) if reference is not None else None
    leak = math.nan
    if reference_colour is not None and reference_shape is not None:
        leak = leakage(track, reference_colour, reference_shape, prompt_colour, prompt_shape)
    pixels = PixelLeakage(math.nan, math.nan, math.nan)
    if frames is not None and reference_colour is not None:
        pixels = pixel_leakage(frames, reference_colour, prompt_colour)
    return SampleScore(
        motion_fidelity=motion_fidelity(track, refs[0]) if refs else math.nan,
        reference_fidelity=reference_fidelity(track, refs) if refs else math.nan,
        family_fidelity=family_fidelity(track, motion) if motion is not None else math.nan,
        appearance_accuracy=appearance_accuracy(track, prompt_colour, prompt_shape),
        colour_accuracy=float(track.colour == prompt_colour),
        shape_accuracy=float(track.shape == prompt_shape),
        leakage=leak,
        found_fraction=track.found_fraction,
        pixel_leakage=pixels.object_share,
        pixel_leakage_background=pixels.background_share,
    )


def summarize(scores: Sequence[SampleScore]) -> dict[str, float]:
    """Mean of each metric over the samples where it is defined, plus `count` and `<metric>_count`."""
    summary: dict[str, float] = {"count": float(len(scores))}
    for f in fields(SampleScore):
        values = [getattr(s, f.name) for s in scores if not math.isnan(getattr(s, f.name))]
        summary[f.name] = float(np.mean(values)) if values else math.nan
        summary[f"{f.name}_count"] = float(len(values))
    return summary
