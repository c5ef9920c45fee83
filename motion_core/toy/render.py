"""Render ShapesT2V clips from a `ClipSpec`, and sample specs for datasets.

Rendering is a pure function of the spec (the textured background is drawn from `spec.seed`), so a dataset is
reproducible from its list of specs alone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F

from ..clips import Clip
from ..errors import InvalidInputError
from .captions import caption as make_caption
from .motions import BASIC_MOTIONS, MotionParams, get_motion, sample_params
from .palette import BACKGROUNDS, COLOURS, TEXTURE_CONTRAST, colour_rgb
from .shapes import SHAPES, check_shape, coverage

OBJECT_SIZE_RANGE = (0.20, 0.28)  # bounding-box side as a fraction of the canvas: 13-18 px at 64 px


@dataclass(frozen=True)
class Companion:
    """A second, still object drawn behind the moving one."""

    colour: str
    shape: str
    x: float
    y: float
    object_size: float = 0.2


@dataclass(frozen=True)
class ClipSpec:
    """Everything that determines one clip. size: canvas side in pixels (square); object_size: the object's
    bounding-box side as a fraction of the canvas; caption: overrides the generated one when given."""

    colour: str
    shape: str
    motion: str
    params: MotionParams = field(default_factory=MotionParams)
    background: str = "black"
    size: int = 64
    frames: int = 16
    fps: float = 8.0
    seed: int = 0
    object_size: float = 0.24
    companion: Companion | None = None
    caption: str | None = None

    def text(self) -> str:
        if self.caption is not None:
            return self.caption
        comp = None if self.companion is None else (self.companion.colour, self.companion.shape)
        return make_caption(self.colour, self.shape, self.motion, comp)


def _check(spec: ClipSpec) -> None:
    colour_rgb(spec.colour)
    check_shape(spec.shape)
    get_motion(spec.motion)
    if spec.background not in BACKGROUNDS:
        raise InvalidInputError(
            f"Unknown ShapesT2V background {spec.background!r}; choose one of {', '.join(BACKGROUNDS)}."
        )
    if spec.size < 16 or spec.frames < 1:
        raise InvalidInputError(f"A ShapesT2V clip needs size >= 16 px and >= 1 frame; got {spec.size}, {spec.frames}.")


def background_image(name: str, height: int, width: int, seed: int) -> torch.Tensor:
    """[H, W, 3] float32. The texture is smooth value noise (an 8x8 grid of grey levels, bicubically upsampled)
    plus a faint per-pixel grain, kept within ±TEXTURE_CONTRAST of its base grey so it never looks like an object."""
    base = torch.tensor(BACKGROUNDS[name], dtype=torch.float32)
    image = base.expand(height, width, 3).clone()
    if name == "texture":
        g = torch.Generator().manual_seed(int(seed))
        coarse = torch.rand(1, 1, 8, 8, generator=g) * 2.0 - 1.0
        smooth = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=False)[0, 0]
        grain = (torch.rand(height, width, generator=g) * 2.0 - 1.0) * 0.25
        texture = (0.75 * smooth + grain).clamp(-1.0, 1.0) * TEXTURE_CONTRAST
        image = image + texture[..., None]
    return image.clamp(0.0, 1.0)


def render_frames(spec: ClipSpec) -> torch.Tensor:
    """float32 [F, H, W, 3] in 0..1."""
    _check(spec)
    h = w = int(spec.size)
    family = get_motion(spec.motion)
    xs, ys, scales = family.positions(spec.frames, spec.params)
    bg = background_image(spec.background, h, w, spec.seed)
    rgb = colour_rgb(spec.colour)
    frames = bg.expand(spec.frames, h, w, 3).clone()
    if spec.companion is not None:
        c = spec.companion
        cov = coverage(check_shape(c.shape), c.x, c.y, c.object_size, h, w)[None, ..., None]
        frames = frames * (1.0 - cov) + colour_rgb(c.colour) * cov
    for i in range(spec.frames):
        cov = coverage(spec.shape, float(xs[i]), float(ys[i]), spec.object_size * float(scales[i]), h, w)[..., None]
        frames[i] = frames[i] * (1.0 - cov) + rgb * cov
    return frames


def render_clip(spec: ClipSpec) -> Clip:
    frames = (render_frames(spec) * 255.0).round().to(torch.uint8)
    return Clip(frames=frames, fps=float(spec.fps), caption=spec.text(), source=f"shapes_t2v:{spec.motion}")


def sample_spec(
    rng: random.Random,
    motions: Sequence[str] = BASIC_MOTIONS,
    colours: Sequence[str] = tuple(COLOURS),
    shapes: Sequence[str] = SHAPES,
    backgrounds: Sequence[str] = tuple(BACKGROUNDS),
    frames: int = 16,
    size: int = 64,
    fps: float = 8.0,
    companion_probability: float = 0.0,
) -> ClipSpec:
    """Draw a random clip spec: colour, shape, motion and background uniformly from the given choices, a family
    member via `motions.sample_params`, an object size from OBJECT_SIZE_RANGE, and with `companion_probability` a
    still second object of another colour and shape placed away from the moving one's path where possible."""
    if not motions or not colours or not shapes or not backgrounds:
        raise InvalidInputError("sample_spec needs at least one motion, colour, shape and background to choose from.")
    colour, shape, motion = rng.choice(list(colours)), rng.choice(list(shapes)), rng.choice(list(motions))
    background = rng.choice(list(backgrounds))
    object_size = rng.uniform(*OBJECT_SIZE_RANGE)
    params = sample_params(rng, motion, frames, object_size)
    companion = None
    if rng.random() < companion_probability:
        companion = _sample_companion(rng, colour, shape, motion, params, frames, object_size)
    return ClipSpec(colour, shape, motion, params, background, size, frames, fps, rng.randrange(2**31), object_size,
                    companion)


def _sample_companion(rng, colour, shape, motion, params, frames, object_size) -> Companion:
    other_colours = [c for c in COLOURS if c != colour]
    other_shapes = [s for s in SHAPES if s != shape]
    size = rng.uniform(0.16, 0.2)
    xs, ys, scales = get_motion(motion).positions(frames, params)
    reach = object_size * float(scales.max()) / 2.0 + size / 2.0 + 0.02
    lo, hi = size / 2.0 + 0.02, 1.0 - size / 2.0 - 0.02
    best, best_gap = None, -1.0
    # Rejection sampling for a spot clear of the path; the clearest of 30 tries if none is fully clear.
    for _ in range(30):
        x, y = rng.uniform(lo, hi), rng.uniform(lo, hi)
        # Chebyshev distance (boxes overlap iff it is below `reach`) at the path's closest frame.
        gap = float(torch.maximum((xs - x).abs(), (ys - y).abs()).min())
        if gap > best_gap:
            best, best_gap = (x, y), gap
        if gap > reach:
            break
    return Companion(rng.choice(other_colours), rng.choice(other_shapes), best[0], best[1], size)
