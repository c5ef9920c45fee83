"""AnimateDiff from disk: an AnimateDiffPipeline folder, an SD1.5 folder plus a motion module, or an SD1.5 single
file plus a motion module (single_file.py), local only. Recognised by the unet's config class (folders) or by a
checkpoint suffix (files, whose keys single_file.py checks); SD2 and SDXL UNets are refused by name, because they
would accept SD1.5 motion modules shape-wise and then produce noise."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ...errors import ModelLoadError
from ..clip_parts import assemble
from ..family import LoadRequest
from ..folders import check_loaded_finite, check_weight_files, from_pretrained_local, load_scheduler, read_json
from .motion_module import CONFIGS_DIR, combine_unet_and_motion_adapter, load_motion_adapter

log = logging.getLogger(__name__)

DENOISER_CLASSES = ("UNetMotionModel", "UNet2DConditionModel")
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth")


def recognises(path: Path) -> bool:
    """An SD1.5 / AnimateDiff diffusers folder, or a checkpoint file (a ModelLoadError for SD2 / SDXL folders)."""
    if not path.is_dir():
        return path.suffix.lower() in SINGLE_FILE_SUFFIXES
    if not (path / "model_index.json").is_file():
        return False
    try:
        config = json.loads((path / "unet" / "config.json").read_text())
        class_name = config.get("_class_name")
    except (OSError, ValueError, AttributeError):
        return False
    if class_name not in DENOISER_CLASSES:
        return False
    if class_name == "UNet2DConditionModel" and (config.get("cross_attention_dim") in (1024, 2048)
                                                 or config.get("addition_embed_type")):
        raise ModelLoadError(
            f"{path} is a Stable Diffusion 2 or SDXL model; AnimateDiff here works with SD1.5 models only."
        )
    return True


def load(request: LoadRequest):
    if not request.path.is_dir():
        from .single_file import load_sd15_single_file

        return load_sd15_single_file(request.path, dtype=request.dtype, device=request.device,
                                     motion_module=request.motion_module, tokenizer_dir=request.tokenizer_dir)
    return load_folder(request.path, request.dtype, request.device, request.motion_module, request.tokenizer_dir)


def load_folder(folder, dtype, device, motion_module, tokenizer_dir):
    from diffusers import UNet2DConditionModel, UNetMotionModel

    from .backbone import AnimateDiffBackbone

    unet_class = read_json(folder / "unet" / "config.json", "unet/config.json")["_class_name"]
    if unet_class == "UNetMotionModel" and motion_module is None:
        unet = from_pretrained_local(UNetMotionModel, folder, "unet", dtype)
    else:
        if unet_class == "UNetMotionModel":
            raise ModelLoadError(
                f"{folder} already contains a motion module (its unet is a UNetMotionModel); leave motion_module "
                "empty, or pick the plain SD1.5 folder to use another motion module."
            )
        if motion_module is None and not (folder / "motion_adapter").is_dir():
            raise ModelLoadError(
                f"{folder} is a Stable Diffusion 1.5 model without a motion module: choose an AnimateDiff motion "
                "module (e.g. v3_sd15_mm.ckpt or mm_sd_v15_v2.ckpt from models/animatediff_models) as motion_module."
            )
        unet2d = from_pretrained_local(UNet2DConditionModel, folder, "unet", dtype)
        source = Path(motion_module or folder / "motion_adapter")
        if source.is_dir():
            check_weight_files(source)
        adapter = load_motion_adapter(source, unet2d.config, dtype)
        if source.is_dir():  # a file's tensors were checked as they were read
            check_loaded_finite(adapter, source)
        unet = combine_unet_and_motion_adapter(unet2d, adapter)
    # Motion modules were trained with linear betas; an SD folder's own scheduler (scaled_linear PNDM) would give
    # them the wrong noise levels, so only an AnimateDiff pipeline folder's scheduler is trusted.
    index = read_json(folder / "model_index.json", "model_index.json")
    scheduler_dir = folder / "scheduler" if index.get("_class_name", "").startswith("AnimateDiff") else None
    scheduler = load_scheduler(scheduler_dir or CONFIGS_DIR / "animatediff" / "scheduler")
    return assemble(AnimateDiffBackbone, folder, unet, scheduler, dtype, device, tokenizer_dir)


