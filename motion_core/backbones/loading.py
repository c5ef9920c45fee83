"""Local-only loading of a model from disk: each family package is asked whether it recognises the folder or file,
and the first that does loads it.

Nothing here touches the network: every from_pretrained call is local_files_only, and the configs that diffusers
would fetch from the hub for single files ship in each family's ``configs/``. Pickled files are only read through
``torch.load(weights_only=True)``, which refuses anything but tensors and plain containers. Every failure is a
ModelLoadError that says what was expected where.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import torch

from ..errors import ModelLoadError
from .animatediff import FAMILY as ANIMATEDIFF
from .base import Backbone
from .family import Family, LoadRequest
from .folders import LIBRARY_LOAD_ERRORS, NOT_A_MODEL, read_json
from .unet3d import FAMILY as UNET3D
from .wan import FAMILY as WAN

FAMILIES: tuple[Family, ...] = (WAN, UNET3D, ANIMATEDIFF)
"""Asked in this order; AnimateDiff last, since it takes any checkpoint file and names what is wrong with it."""

log = logging.getLogger(__name__)

__all__ = ["FAMILIES", "detect_family", "load_backbone", "plan_backbone"]


def load_backbone(path, *, dtype: torch.dtype = torch.float32, device="cpu", motion_module=None,
                  tokenizer_dir=None, vae=None, text_encoder=None, expert: str = "high_noise",
                  clip_vision=None, keep_fp8: bool | None = None) -> Backbone:
    """Load a model from disk and return its Backbone, on ``device`` in ``dtype``, all weights frozen.

    path: a diffusers folder (ModelScope/ZeroScope TextToVideoSDPipeline, AnimateDiffPipeline, or an SD1.5
    StableDiffusionPipeline folder used with ``motion_module``), or an SD1.5 single-file checkpoint.
    motion_module: an AnimateDiff motion module file (v1/v2/v3 .ckpt/.safetensors) or diffusers MotionAdapter folder;
    required for SD1.5 models, overrides a folder's own motion_adapter. tokenizer_dir: a CLIP tokenizer folder
    (vocab.json + merges.txt, or tokenizer.json; e.g. ComfyUI's comfy/sd1_tokenizer) used when the model has none.
    Wan 2.1 / 2.2: a WanPipeline or WanImageToVideoPipeline folder, or a models/diffusion_models file with ``vae``
    and ``text_encoder`` files from models/vae and models/text_encoders (and for Wan 2.1 image-to-video the
    ``clip_vision`` file from models/clip_vision); ``expert`` picks a Wan 2.2 A14B expert ("high_noise", where motion
    forms, or "low_noise"), each trained only on its own side of the boundary. ``keep_fp8``: a Wan file stored in
    fp8 keeps its Linear weights in fp8 (with their scales; each layer computes in ``dtype``), which halves the
    memory of a bf16 copy; None (the default) keeps them on CUDA and widens them to ``dtype`` elsewhere.
    """
    path = Path(path)
    kind = _kind_on_disk(path)
    if kind is None:
        raise ModelLoadError(f"{path} does not exist: {NOT_A_MODEL}.")
    if kind == "other":  # a FIFO or device: opening it would block or never end, so nothing here opens it
        raise ModelLoadError(f"{path.name} is not a regular file (a pipe, socket or device): {NOT_A_MODEL}.")
    family = _recognising_family(path)
    request = LoadRequest(path, dtype=dtype, device=device, motion_module=motion_module, tokenizer_dir=tokenizer_dir,
                          vae=vae, text_encoder=text_encoder, expert=expert, clip_vision=clip_vision,
                          keep_fp8=keep_fp8)
    return family.load(request)


def plan_backbone(path, *, dtype: torch.dtype = torch.float32, device="cpu", motion_module=None, tokenizer_dir=None,
                  vae=None, text_encoder=None, expert: str = "high_noise", clip_vision=None,
                  keep_fp8: bool | None = None):
    """What ``load_backbone`` with the same arguments would give, on the meta device and without reading a weight
    (preload.PlannedModel: the backbone and the host memory its loading takes). NoPlanBeforeLoading where the
    family (or a file) can only be planned once loaded; the refusals loading would make are made here too."""
    from .preload import NoPlanBeforeLoading

    path = Path(path)
    kind = _kind_on_disk(path)
    if kind is None:
        raise ModelLoadError(f"{path} does not exist: {NOT_A_MODEL}.")
    if kind == "other":
        raise ModelLoadError(f"{path.name} is not a regular file (a pipe, socket or device): {NOT_A_MODEL}.")
    family = _recognising_family(path)
    if family.plan is None:
        raise NoPlanBeforeLoading(f"{family.name} models ({family.summary}) can only be planned once loaded")
    request = LoadRequest(path, dtype=dtype, device=device, motion_module=motion_module, tokenizer_dir=tokenizer_dir,
                          vae=vae, text_encoder=text_encoder, expert=expert, clip_vision=clip_vision,
                          keep_fp8=keep_fp8)
    try:
        return family.plan(request)
    except LIBRARY_LOAD_ERRORS as error:  # a config the library will not build: loading names what is wrong
        log.warning("planning %s before loading failed: %s", path, error)
        raise NoPlanBeforeLoading(f"{path.name}'s configuration could not be read before loading "
                                  f"({type(error).__name__}); loading it says what is wrong") from error


def detect_family(folder) -> str:
    """The name of the family that recognises a diffusers folder ("wan", "unet3d" or "animatediff")."""
    return _recognising_family(Path(folder)).name


def _recognising_family(path: Path) -> Family:
    for family in FAMILIES:
        if family.recognises(path):
            return family
    raise _unrecognised(path)


def _unrecognised(path: Path) -> ModelLoadError:
    """What the user hears when no family claims ``path``: what is missing, or what the folder holds instead."""
    if not path.is_dir():
        return ModelLoadError(f"{path.name} is not a model file (expected .safetensors or .ckpt): {NOT_A_MODEL}.")
    if not (path / "model_index.json").is_file():
        return ModelLoadError(f"model_index.json not found in {path}: {NOT_A_MODEL}.")
    config = read_json(path / "unet" / "config.json", "the denoiser's config (unet/config.json)")  # may raise
    names = [family.summary for family in FAMILIES]
    supported = ", ".join(names[:-1]) + " and " + names[-1]
    return ModelLoadError(f"{path} holds a {config.get('_class_name') or 'unknown'} denoiser; supported are "
                          f"{supported}.")


def _kind_on_disk(path: Path) -> str | None:
    """"dir", "file" (regular, links followed), "other" (FIFO, socket, device) or None when absent or unnameable."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        return None
    return "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"
