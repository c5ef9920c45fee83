"""AnimateDiff on Stable Diffusion 1.5: the backbone (``backbone``), folders and single files (``loading``,
``single_file``), motion modules in both key layouts (``motion_module``), a tiny model for tests (``tiny``) and the
shipped SD1.5 / MotionAdapter / schedule configs (``configs/``)."""

from __future__ import annotations

from ..family import Family
from . import loading
from .backbone import AnimateDiffBackbone
from .motion_module import CONFIGS_DIR, combine_unet_and_motion_adapter, load_motion_adapter
from .tiny import save_tiny_motion_module_file, tiny_animatediff_backbone

FAMILY = Family("animatediff", "SD1.5 UNets with an AnimateDiff motion module", loading.recognises, loading.load)

__all__ = ["AnimateDiffBackbone", "CONFIGS_DIR", "FAMILY", "combine_unet_and_motion_adapter", "load_motion_adapter",
           "save_tiny_motion_module_file", "tiny_animatediff_backbone"]
