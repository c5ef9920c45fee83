"""Who sets the camera move in a sample: the prompt's motion words or the starting noise? (`research.prompt_control` for
camera paths.)

Each seed's starting noise is sampled under several camera prompts (same colours); each sample's path is estimated
(`estimate.estimate_path`) and reduced to its mean step over the clip in two components: (dx, dy) for pans and tilts,
(dz, dtheta) for zooms and rolls. `research.prompt_control.prompt_share` then splits the variance between prompts and
between seeds: 1 when the words alone set the move, 0 when the noise alone does. Also reported: the share of samples
whose largest-projection move (of all eight) is the prompted one (chance 1/8).
"""

from __future__ import annotations

import numpy as np

from ...sampling import SampleRequest, sample_video
from ..prompt_control import prompt_share
from .captions import camera_caption
from .estimate import estimate_path
from .world import MOVES

PAN_TILT = ("pan_left", "pan_right", "tilt_up", "tilt_down")
ZOOM_ROLL = ("zoom_in", "zoom_out", "roll_clockwise", "roll_anticlockwise")


def classify(steps: np.ndarray) -> str:
    """The move whose unit direction the mean step projects onto most (speeds of all moves share one range)."""
    mean = np.asarray(steps).mean(axis=0)
    return max(MOVES, key=lambda m: float(np.dot(mean, MOVES[m][0])))


def measure(backbone, *, seeds: int = 3, moves=PAN_TILT, colours=("red", "blue"), steps: int = 20,
            cfg: float = 5.0, frames: int = 8, size: int = 64, log=print) -> dict:
    comps = [0, 1] if set(moves) <= set(PAN_TILT) else [2, 3]
    velocities = np.full((seeds, len(moves), 2), np.nan)
    hits = []
    for s in range(seeds):
        for j, move in enumerate(moves):
            request = SampleRequest(prompt=camera_caption(move, colours), seed=s, steps=steps, cfg=cfg,
                                    frames=frames, width=size, height=size, fps=8.0)
            path = estimate_path(sample_video(backbone, request).frames)
            velocities[s, j] = path.mean(axis=0)[comps] * (frames - 1)
            hits.append(classify(path) == move)
        log(f"seed {s}: " + ", ".join(f"{m} ({v[0]:+.3f}, {v[1]:+.3f})" for m, v in zip(moves, velocities[s])))
    return {**prompt_share(velocities), "prompted_move_rate": float(np.mean(hits)),
            "velocities": velocities.round(4).tolist(), "moves": list(moves)}
