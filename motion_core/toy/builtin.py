"""The built-in models of this world and the clip length each one takes.

ShapesT2V (UNet3D, ZeroScope layout) takes 8-frame clips; ShapesWan (the Wan classes) takes 1 + 4k frames, so 9.
Benchmarks and probes ask `clip_frames` instead of assuming 8, so one command measures either model.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidInputError
from .pretrain.architecture import NUM_FRAMES

TOY_DIR = Path(__file__).resolve().parent
SHAPES_T2V_DIR = TOY_DIR / "shapes_t2v"
SHAPES_WAN_DIR = TOY_DIR / "shapes_wan"
# ShapesWan v2 (issue #36): ShapesWan's text-to-video model trained 600 steps more; its samples keep their shape
# more often (docs/shapes_wan.md). ShapesWan stays the default: the demos and quality floors were measured on it.
SHAPES_WAN_V2_DIR = TOY_DIR / "shapes_wan_v2"
SHAPES_WAN_I2V_DIR = TOY_DIR / "shapes_wan_i2v"  # ShapesWan's image-to-video form (WanImageToVideoPipeline)
# ShapesWan-I2V v2 (issue #35): the same command with the patch embedding at 10x the rate, run to its 1,500 steps;
# its first frame stays at the image's place (67% within 2 px, v1 14%).
SHAPES_WAN_I2V_V2_DIR = TOY_DIR / "shapes_wan_i2v_v2"
BUILTIN_MODELS = {"shapes_t2v": SHAPES_T2V_DIR, "shapes_wan": SHAPES_WAN_DIR, "shapes_wan_v2": SHAPES_WAN_V2_DIR,
                  "shapes_wan_i2v": SHAPES_WAN_I2V_DIR, "shapes_wan_i2v_v2": SHAPES_WAN_I2V_V2_DIR}


def clip_frames(backbone, at_least: int = NUM_FRAMES) -> int:
    """The shortest clip of at least ``at_least`` frames that the backbone's VAE encodes whole."""
    for frames in range(at_least, at_least + 16):
        try:
            backbone.check_video_frames(frames)
        except InvalidInputError:
            continue
        return frames
    raise InvalidInputError(f"No clip length from {at_least} to {at_least + 15} frames suits this model's VAE.")


def resolve_builtin(model: str | Path) -> Path:
    """A built-in model's short name ("shapes_t2v", "shapes_wan", "shapes_wan_i2v") becomes its folder; any other
    value is a path."""
    return BUILTIN_MODELS.get(str(model), Path(model))
