"""AnimateDiff from a single-file Stable Diffusion 1.5 checkpoint (the .safetensors files in ComfyUI's
models/checkpoints) plus a motion module.

diffusers converts the original (LDM) key layout itself, but given only a file it looks the model configs up on the
hub; here it is handed the configs shipped in configs/sd15 instead, and the checkpoint as an already-read dict, so
nothing is fetched. The CLIP tokenizer is not inside such files: it comes from ``tokenizer_dir`` (ComfyUI bundles one
in comfy/sd1_tokenizer).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ...errors import ModelLoadError
from ..base import ready
from ..clip_parts import load_tokenizer
from ..files import read_state_dict
from ..folders import load_scheduler
from .motion_module import CONFIGS_DIR, combine_unet_and_motion_adapter, load_motion_adapter

SD15_UNET_KEY = "model.diffusion_model.input_blocks.0.0.weight"
SD15_CROSS_ATTN_KEY = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
SD15_TEXT_KEY = "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"
SD15_VAE_KEY = "first_stage_model.encoder.conv_in.weight"


def load_sd15_single_file(path, *, dtype=torch.float32, device="cpu", motion_module=None, tokenizer_dir=None,
                          config_dir: Path = CONFIGS_DIR / "sd15"):
    """An AnimateDiffBackbone from an SD1.5 checkpoint file and an AnimateDiff motion module."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from .backbone import AnimateDiffBackbone

    path, config_dir = Path(path), Path(config_dir)
    checkpoint = read_state_dict(path)
    unet_config = json.loads((config_dir / "unet" / "config.json").read_text())
    check_sd15_checkpoint(checkpoint, path.name, unet_config["cross_attention_dim"])
    if motion_module is None:
        raise ModelLoadError(
            f"{path.name} is a single image-model checkpoint; to make videos it needs an AnimateDiff motion module "
            "(e.g. v3_sd15_mm.ckpt from models/animatediff_models) chosen as motion_module."
        )
    tokenizer = load_tokenizer(None, tokenizer_dir)
    options = dict(config=str(config_dir), local_files_only=True, torch_dtype=dtype)
    try:
        unet2d = UNet2DConditionModel.from_single_file(checkpoint, subfolder="unet", **options)
        vae = AutoencoderKL.from_single_file(checkpoint, subfolder="vae", **options)
    except (OSError, ValueError, RuntimeError, KeyError) as error:
        raise ModelLoadError(f"Could not convert {path.name} as a Stable Diffusion 1.5 checkpoint: {error}") from error
    text_encoder = _text_encoder_from_checkpoint(checkpoint, config_dir / "text_encoder", path.name)
    del checkpoint
    adapter = load_motion_adapter(motion_module, unet2d.config, dtype)
    unet = combine_unet_and_motion_adapter(unet2d, adapter)
    scheduler = load_scheduler(CONFIGS_DIR / "animatediff" / "scheduler")
    return ready(AnimateDiffBackbone, unet, vae, text_encoder, tokenizer, scheduler, dtype, device, str(path))


def check_sd15_checkpoint(checkpoint: dict, name: str, text_width: int = 768) -> None:
    """Refuse files that are not complete SD1.5 checkpoints (text width 768), saying what they look like instead."""
    if SD15_UNET_KEY not in checkpoint:
        if any(".motion_modules." in k for k in checkpoint):
            raise ModelLoadError(f"{name} is an AnimateDiff motion module, not a base model: choose it as "
                                 "motion_module and pick a Stable Diffusion 1.5 checkpoint as the model.")
        raise ModelLoadError(f"{name} is not a Stable Diffusion checkpoint (it has no model.diffusion_model "
                             "weights): pick an SD1.5 .safetensors checkpoint or a diffusers model folder.")
    cross = checkpoint.get(SD15_CROSS_ATTN_KEY)
    if cross is None or cross.shape[-1] != text_width:
        raise ModelLoadError(f"{name} is not a Stable Diffusion 1.5 checkpoint (SD2/SDXL text width); AnimateDiff "
                             "motion modules here work with SD1.5 models only.")
    for key, part in ((SD15_TEXT_KEY, "text encoder"), (SD15_VAE_KEY, "VAE")):
        if key not in checkpoint:
            raise ModelLoadError(f"{name} has no {part} weights (a UNet-only file); pick a full SD1.5 checkpoint.")


def _text_encoder_from_checkpoint(checkpoint: dict, config_dir: Path, name: str):
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint
    from transformers import CLIPTextConfig, CLIPTextModel

    model = CLIPTextModel(CLIPTextConfig.from_json_file(str(config_dir / "config.json")))
    expected = set(model.state_dict())
    weights = {}
    for key, value in convert_ldm_clip_checkpoint(checkpoint).items():
        # Checkpoints say text_model.<...>; transformers 5 dropped that level from CLIPTextModel, 4.x kept it.
        bare = key.removeprefix("text_model.")
        weights[key if key in expected else bare if bare in expected else "text_model." + bare] = value
    result = model.load_state_dict(weights, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("position_ids")]
    if missing:
        raise ModelLoadError(f"{name}: the text encoder weights are incomplete (missing {missing[:5]}).")
    return model
