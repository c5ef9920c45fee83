"""Backbones: the ``Backbone`` interface and objectives (base.py, objectives.py), one package per model family
(``unet3d/`` ModelScope/ZeroScope, ``animatediff/``, ``wan/``), and below them the helpers every family shares
(files.py, folders.py, memory.py, checkpointing.py; clip_unet.py / clip_parts.py for the two CLIP UNet families).
No family imports another; ``loading.load_backbone`` asks each family whether it recognises a folder or file.

Importing this package is cheap (torch only); diffusers and transformers are imported when a model is built.
"""

from .animatediff import (
                          AnimateDiffBackbone,
                          load_motion_adapter,
                          save_tiny_motion_module_file,
                          tiny_animatediff_backbone,
)
from .base import SHARED_TARGET_SETS, Backbone
from .loading import FAMILIES, detect_family, load_backbone
from .tiny import save_tiny_diffusers_folder
from .unet3d import UNet3DBackbone, tiny_unet3d_backbone
from .wan import WanBackbone, save_tiny_wan_diffusers_folder, tiny_wan_backbone

__all__ = [
    "AnimateDiffBackbone",
    "Backbone",
    "FAMILIES",
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
