"""A camera-move world: a virtual 64x64 camera pans, tilts, zooms or rolls over a large seeded textured canvas.

Why: in ShapesT2V the moving object covers ~5% of the pixels, so a denoiser that gets the motion wrong pays little
for it (motion_core/toy/FINDINGS.md, "Where the motion comes from"; `camera.weight` measures it). A camera move
shifts every pixel of every frame, which is what AnimateDiff's own MotionLoRAs (PanLeft, ZoomIn, RollingClockwise,
...) encode and what users most often train. Rendering is a pure function of the `CameraSpec`, like
`render.render_frames` is of a `ClipSpec`.

Geometry (frame widths, x right, y down; a frame spans [-0.5, 0.5]^2 about its centre):
    canvas point shown at frame pixel u:   p = c_t + exp(-z_t) R(theta_t) u
with c_t the camera centre on the canvas, z_t its log zoom (> 0: zoomed in) and theta_t its roll (R rotates x
towards y, i.e. clockwise on screen). Each frame step moves the camera by (dx, dy) measured in the current frame's
own axes and widths, and changes z by dz and theta by dtheta: the per-step path `camera.estimate` recovers.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ...errors import InvalidInputError
from ...toy.palette import BACKGROUNDS, COLOURS, colour_rgb
from ...toy.render import background_image

FRAME_SIZE = 64
CANVAS_FRAMES = 6.0  # canvas side in frame widths: room for the largest pan, zoom-out or roll below
SUPERSAMPLE = 2  # frames are sampled at 2x and box-filtered, so zoomed-out views do not alias the grain

# move -> (unit step (dx, dy, dz, dtheta) per unit speed, speed range per frame). Pans/tilts in frame widths,
# zooms in log scale, rolls in radians: 2.5-6 px, 4-9% and 2.3-5.7 degrees a frame at 64 px.
MOVES: dict[str, tuple[tuple[float, float, float, float], tuple[float, float]]] = {
    "pan_left": ((-1.0, 0.0, 0.0, 0.0), (0.04, 0.10)),
    "pan_right": ((1.0, 0.0, 0.0, 0.0), (0.04, 0.10)),
    "tilt_up": ((0.0, -1.0, 0.0, 0.0), (0.04, 0.10)),
    "tilt_down": ((0.0, 1.0, 0.0, 0.0), (0.04, 0.10)),
    "zoom_in": ((0.0, 0.0, 1.0, 0.0), (0.04, 0.09)),
    "zoom_out": ((0.0, 0.0, -1.0, 0.0), (0.04, 0.09)),
    "roll_clockwise": ((0.0, 0.0, 0.0, 1.0), (0.04, 0.10)),
    "roll_anticlockwise": ((0.0, 0.0, 0.0, -1.0), (0.04, 0.10)),
}
OPPOSITE = {"pan_left": "pan_right", "pan_right": "pan_left", "tilt_up": "tilt_down", "tilt_down": "tilt_up",
            "zoom_in": "zoom_out", "zoom_out": "zoom_in", "roll_clockwise": "roll_anticlockwise",
            "roll_anticlockwise": "roll_clockwise"}


@dataclass(frozen=True)
class MoveParams:
    """speed: step size per frame (units of MOVES); wobble in [0, 1): the step varies as
    speed * (1 + wobble * sin(2 pi t / (F - 1) + phase)), so members of one move differ in timing, not only rate;
    start: the camera's initial (x, y, z, theta) on the canvas."""

    speed: float = 0.07
    wobble: float = 0.0
    phase: float = 0.0
    start: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class CameraSpec:
    """Everything that determines one camera clip; `colours` are two palette names the pattern mixes."""

    move: str
    params: MoveParams = field(default_factory=MoveParams)
    colours: tuple[str, str] = ("red", "blue")
    frames: int = 8
    size: int = FRAME_SIZE
    fps: float = 8.0
    seed: int = 0

    def text(self) -> str:
        from .captions import camera_caption

        return camera_caption(self.move, self.colours)


def check_move(move: str) -> str:
    if move not in MOVES:
        raise InvalidInputError(f"Unknown camera move {move!r}; choose one of {', '.join(MOVES)}.")
    return move


def path_steps(move: str, params: MoveParams, frames: int) -> np.ndarray:
    """[frames - 1, 4] float64 (dx, dy, dz, dtheta) per frame step: the ground truth `estimate_path` recovers."""
    unit = np.asarray(MOVES[check_move(move)][0], dtype=np.float64)
    t = np.arange(max(frames - 1, 0), dtype=np.float64)
    profile = 1.0 + params.wobble * np.sin(2.0 * math.pi * t / max(frames - 1, 1) + params.phase)
    return params.speed * profile[:, None] * unit[None, :]


def poses(steps: np.ndarray, start=(0.0, 0.0, 0.0, 0.0)) -> np.ndarray:
    """[F, 4] camera poses (cx, cy, z, theta) on the canvas from per-step (dx, dy, dz, dtheta); a step's
    translation is in the current frame's axes and widths, so it is rotated and scaled onto the canvas."""
    pose = np.array(start, dtype=np.float64)
    out = [pose.copy()]
    for dx, dy, dz, dth in np.asarray(steps, dtype=np.float64):
        c, s, k = math.cos(pose[3]), math.sin(pose[3]), math.exp(-pose[2])
        pose = pose + np.array([k * (c * dx - s * dy), k * (s * dx + c * dy), dz, dth])
        out.append(pose.copy())
    return np.stack(out)


def _smooth_noise(g: torch.Generator, cells: int, size: int) -> torch.Tensor:
    coarse = torch.rand(1, 1, cells, cells, generator=g) * 2.0 - 1.0
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0, 0]


def canvas(colours: tuple[str, str], seed: int, size_px: int | None = None) -> torch.Tensor:
    """[3, S, S] float32 in 0..1: two palette colours mixed by a multi-octave value-noise field (blobs of a few
    frame widths down to ~10 px, so every view holds structure at several scales for the motion estimator), shaded
    by a second field, with render.py's grey texture added as fine grain."""
    size = int(size_px or round(CANVAS_FRAMES * FRAME_SIZE))
    g = torch.Generator().manual_seed(int(seed))
    octaves = [(6, 1.0), (12, 0.6), (24, 0.4), (48, 0.3)]
    mix = sum(w * _smooth_noise(g, n, size) for n, w in octaves)
    shade = sum(w * _smooth_noise(g, n, size) for n, w in octaves[1:])
    m = torch.sigmoid(4.0 * mix)[None]
    a, b = colour_rgb(colours[0])[:, None, None], colour_rgb(colours[1])[:, None, None]
    image = (a * m + b * (1.0 - m)) * (1.0 + 0.25 * shade)[None]
    grain = background_image("texture", size, size, seed).permute(2, 0, 1) - torch.tensor(BACKGROUNDS["texture"])[
        :, None, None]
    return (image + 2.0 * grain).clamp(0.0, 1.0)


def render_camera_frames(spec: CameraSpec) -> torch.Tensor:
    """float32 [F, H, W, 3] in 0..1: the canvas seen through the camera at each pose."""
    if spec.frames < 2 or spec.size < 16:
        raise InvalidInputError(f"A camera clip needs >= 2 frames and size >= 16 px; got {spec.frames}, {spec.size}.")
    for c in spec.colours:
        colour_rgb(c)
    image = canvas(spec.colours, spec.seed)[None]
    half = CANVAS_FRAMES / 2.0
    n = spec.size * SUPERSAMPLE
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n - 0.5
    uy, ux = torch.meshgrid(u, u, indexing="ij")
    grids = []
    for cx, cy, z, th in poses(path_steps(spec.move, spec.params, spec.frames), spec.params.start):
        k, c, s = math.exp(-z), math.cos(th), math.sin(th)
        px = cx + k * (c * ux - s * uy)
        py = cy + k * (s * ux + c * uy)
        grids.append(torch.stack([px, py], -1) / half)
    grid = torch.stack(grids).float()
    frames = F.grid_sample(image.expand(len(grids), -1, -1, -1), grid, mode="bilinear", padding_mode="reflection",
                           align_corners=False)
    frames = F.avg_pool2d(frames, SUPERSAMPLE)
    return frames.permute(0, 2, 3, 1).contiguous().clamp(0.0, 1.0)


def sample_camera_spec(rng: random.Random, moves=tuple(MOVES), frames: int = 8, size: int = FRAME_SIZE,
                       fps: float = 8.0) -> CameraSpec:
    """A random clip: move, speed in its range, wobble up to 0.5 with a random phase, start near the canvas centre
    (and a random start roll/zoom), two different palette colours."""
    move = rng.choice(list(moves))
    lo, hi = MOVES[check_move(move)][1]
    start = (rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), rng.uniform(-0.1, 0.1), rng.uniform(-0.3, 0.3))
    params = MoveParams(rng.uniform(lo, hi), rng.uniform(0.0, 0.5), rng.uniform(0.0, 2.0 * math.pi), start)
    colours = tuple(rng.sample(list(COLOURS), 2))
    return CameraSpec(move, params, colours, frames, size, fps, rng.randrange(2**31))
