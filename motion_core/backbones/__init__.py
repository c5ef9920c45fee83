"""Backbones: one module per text-to-video model family, all behind the ``Backbone`` interface (see base.py).

Importing this package is cheap (torch only); diffusers and transformers are imported when a model is built.
"""

from .animatediff import AnimateDiffBackbone
from .base import SHARED_TARGET_SETS, Backbone
from .loading import detect_family, load_backbone
from .motion_module import load_motion_adapter
from .tiny import (
    save_tiny_diffusers_folder,
    save_tiny_motion_module_file,
    tiny_animatediff_backbone,
    tiny_unet3d_backbone,
)
from .tiny_wan import save_tiny_wan_diffusers_folder, tiny_wan_backbone
from .unet3d import UNet3DBackbone
from .wan import WanBackbone

__all__ = [
    "AnimateDiffBackbone",
    "Backbone",
    "SHARED_TARGET_SETS",
    "UNet3DBackbone",
    "WanBackbone",
    "detect_family",
    "load_backbone",
    "load_motion_adapter",
    "save_tiny_diffusers_folder",
    "save_tiny_motion_module_file",
    "save_tiny_wan_diffusers_folder",
    "tiny_animatediff_backbone",
    "tiny_unet3d_backbone",
    "tiny_wan_backbone",
]
