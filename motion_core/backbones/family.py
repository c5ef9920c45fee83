"""What a model family tells the loader: whether a folder or file on disk is one of its models, and how to load it.

Each family package (``unet3d/``, ``animatediff/``, ``wan/``) exposes one ``Family``; ``loading.load_backbone`` asks
them in turn. A new family is one new package with its own ``FAMILY`` and one line in ``loading.FAMILIES``: nothing
else in the engine has to know its shapes or file layouts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch


@dataclass(frozen=True)
class LoadRequest:
    """Everything a user can say about a model to load; a family reads the options it has and ignores the rest."""

    path: Path
    dtype: torch.dtype = torch.float32
    device: object = "cpu"
    motion_module: object = None
    """AnimateDiff: a motion module file or MotionAdapter folder."""
    tokenizer_dir: object = None
    """A tokenizer folder for models that come without one (single files)."""
    vae: object = None
    """Wan single files: the VAE file (models/vae)."""
    text_encoder: object = None
    """Wan single files: the UMT5 file (models/text_encoders)."""
    expert: str = "high_noise"
    """Wan 2.2 A14B: which expert becomes the denoiser."""
    clip_vision: object = None
    """Wan 2.1 image-to-video single files (or to replace a folder's own): the CLIP vision file (models/clip_vision)."""
    keep_fp8: bool | None = None
    """Wan single files: keep the Linear weights an fp8 file stores in fp8 (True), widen them to ``dtype`` (False), or
    keep them when ``device`` is CUDA (None), as ComfyUI keeps fp8 files in fp8."""


@dataclass(frozen=True)
class Family:
    """One model family as the loader sees it."""

    name: str
    summary: str
    """The models it covers, in a user's words (used in "supported are ..." messages)."""
    recognises: Callable[[Path], bool]
    """Cheap: reads configs or a safetensors header, never weights. May raise ModelLoadError for a model that is of
    this family but of a variant it refuses (e.g. an SDXL UNet for AnimateDiff), so the user hears why."""
    load: Callable[[LoadRequest], object]
    """The Backbone, frozen, on ``request.device`` in ``request.dtype``."""
    plan: Callable[[LoadRequest], object] | None = None
    """The same Backbone on the meta device, from configs and headers only (preload.PlannedModel): what the memory
    plan reads before loading. None: this family is planned after loading."""
