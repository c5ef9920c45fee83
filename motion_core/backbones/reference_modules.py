"""Module names of the real architectures, built on the meta device from the shipped configs (no weights, no download).

Some LoRA layouts (kohya, ComfyUI's SD1.5 layout) name modules in a way that can only be resolved against a model.
When a loader node has no model wired in, the released architectures those files are made for stand in for it; the
LoRA is still checked against the actual model when it is applied.
"""

from __future__ import annotations

import json
from functools import lru_cache

import torch

from .animatediff import CONFIGS_DIR as ANIMATEDIFF_CONFIGS
from .unet3d import CONFIGS_DIR as UNET3D_CONFIGS

REFERENCE_ARCHITECTURES = {"sd15": ("UNet2DConditionModel", ANIMATEDIFF_CONFIGS / "sd15" / "unet"),
                           "unet3d": ("UNet3DConditionModel", UNET3D_CONFIGS / "zeroscope_v2_576w_unet")}
"""Name -> (diffusers class, config folder): SD1.5 (AnimateDiff's spatial layers), ZeroScope / ModelScope."""


@lru_cache(maxsize=None)
def reference_module_names(architecture: str) -> tuple[str, ...]:
    """``named_modules()`` names of a released architecture (see REFERENCE_ARCHITECTURES)."""
    import diffusers

    class_name, folder = REFERENCE_ARCHITECTURES[architecture]
    config = json.loads((folder / "config.json").read_text())
    with torch.device("meta"):
        model = getattr(diffusers, class_name).from_config(config)
    return tuple(name for name, _ in model.named_modules())
