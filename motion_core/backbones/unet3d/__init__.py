"""ModelScope / ZeroScope (UNet3DConditionModel): the backbone (``backbone``), its diffusers folders (``loading``),
a tiny model for tests (``tiny``) and the released UNet configs (``configs/``, for real-architecture tests)."""

from __future__ import annotations

from pathlib import Path

from ..family import Family
from . import loading
from .backbone import UNet3DBackbone
from .tiny import tiny_unet3d_backbone

CONFIGS_DIR = Path(__file__).resolve().parent / "configs"

FAMILY = Family("unet3d", "UNet3DConditionModel (ModelScope/ZeroScope)", loading.recognises, loading.load,
                loading.plan)

__all__ = ["CONFIGS_DIR", "FAMILY", "UNet3DBackbone", "tiny_unet3d_backbone"]
