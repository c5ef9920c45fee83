"""The camera-move world: a virtual camera pans, tilts, zooms and rolls over a seeded textured canvas.

Why it exists: in ShapesT2V a moving object covers ~5% of the frame and the shipped model ignores the motion words
(FINDINGS.md, "Where the motion comes from"). Here every pixel moves, as in the footage AnimateDiff's MotionLoRAs
are trained on. Modules: `world` (render), `captions`, `estimate` (global motion by phase correlation), `fidelity`
(camera paths scored with `metrics.motion_fidelity`), `weight` (how much motion the loss sees), `prompt_control`
(prompt share of camera moves) and `probe` (a short text-to-video fine-tune on this world). FINDINGS.md, "A world in
which motion carries weight", holds the figures.
"""

from .captions import CAMERA_WORDS, PHRASES, camera_caption
from .estimate import estimate_path
from .fidelity import camera_chance, camera_fidelity, random_camera_paths, random_walk_paths
from .world import MOVES, OPPOSITE, CameraSpec, MoveParams, path_steps, render_camera_frames, sample_camera_spec

__all__ = ["CAMERA_WORDS", "MOVES", "OPPOSITE", "PHRASES", "CameraSpec", "MoveParams", "camera_caption",
           "camera_chance", "camera_fidelity", "estimate_path", "path_steps", "random_camera_paths",
           "random_walk_paths", "render_camera_frames", "sample_camera_spec"]
