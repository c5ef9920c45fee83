"""ModelScope / ZeroScope from disk: a diffusers TextToVideoSDPipeline folder (unet, vae, text_encoder, tokenizer,
scheduler), local only; a folder is recognised by its unet's config class."""

from __future__ import annotations

import json
from pathlib import Path

from ..clip_parts import assemble, assemble_on_meta
from ..family import LoadRequest
from ..folders import from_pretrained_local, load_scheduler

DENOISER_CLASS = "UNet3DConditionModel"


def recognises(path: Path) -> bool:
    """A diffusers folder whose unet is a UNet3DConditionModel (a damaged config is left to the loader's message)."""
    if not (path.is_dir() and (path / "model_index.json").is_file()):
        return False
    try:
        return json.loads((path / "unet" / "config.json").read_text()).get("_class_name") == DENOISER_CLASS
    except (OSError, ValueError, AttributeError):
        return False


def load(request: LoadRequest):
    from diffusers import UNet3DConditionModel

    from .backbone import UNet3DBackbone

    folder, dtype = request.path, request.dtype
    unet = from_pretrained_local(UNet3DConditionModel, folder, "unet", dtype)
    return assemble(UNet3DBackbone, folder, unet, load_scheduler(folder / "scheduler"), dtype, request.device,
                    request.tokenizer_dir)


def plan(request: LoadRequest):
    """The backbone ``load`` gives, on the meta device from the folder's config files (preload.PlannedModel)."""
    import torch
    from diffusers import UNet3DConditionModel

    from ..folders import read_json
    from ..preload import PlannedModel, mapped_loading_host
    from .backbone import UNet3DBackbone

    folder = request.path
    config = read_json(folder / "unet" / "config.json", "the denoiser's config (unet/config.json)")
    with torch.device("meta"):
        unet = UNet3DConditionModel.from_config(config)
    backbone = assemble_on_meta(UNet3DBackbone, folder, unet, load_scheduler(folder / "scheduler"), request.dtype,
                                request.tokenizer_dir)
    host = mapped_loading_host(backbone, [folder / name for name in ("unet", "vae", "text_encoder")])
    return PlannedModel(backbone, host, "the folder's config files")
