"""A tiny random-init AnimateDiff backbone from the REAL classes (SD1.5-style UNet2DConditionModel + a v3-style
MotionAdapter joined into a UNetMotionModel), and the same motion module as an original-layout file, for tests."""

from __future__ import annotations

from pathlib import Path

import torch

from ..tiny_clip import TINY_TEXT_DIM, ready_tiny, tiny_clip_text_encoder, tiny_clip_vae
from .motion_module import CONFIGS_DIR, combine_unet_and_motion_adapter, to_original_layout

PIPELINE = "AnimateDiffPipeline"


def tiny_animatediff_backbone(seed: int = 0, *, dtype: torch.dtype = torch.float32, device="cpu"):
    """A ready AnimateDiffBackbone (SD1.5 UNet + v3-style motion adapter, no motion mid block) from ``seed``."""
    from .backbone import AnimateDiffBackbone

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # draw order as in save_tiny_diffusers_folder, so both give the same weights
        unet2d, adapter = tiny_animatediff_parts()
        parts = dict(vae=tiny_clip_vae(), text_encoder=tiny_clip_text_encoder())
    parts["denoiser"] = combine_unet_and_motion_adapter(unet2d, adapter)
    return ready_tiny(AnimateDiffBackbone, parts, tiny_animatediff_scheduler(), dtype, device,
                      f"tiny-animatediff-seed{seed}")


def save_tiny_motion_module_file(path, seed: int = 0):
    """Write the tiny AnimateDiff motion adapter as a single .safetensors file in the ORIGINAL AnimateDiff key layout
    (``...motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0...``, with pos_encoder.pe),
    the layout of mm_sd_v15_v2.ckpt / v3_sd15_mm.ckpt, so the loader's conversion path is tested."""
    from safetensors.torch import save_file

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _, adapter = tiny_animatediff_parts()
    original = {k: v.clone() for k, v in to_original_layout(adapter.state_dict()).items()}
    save_file(original, str(path))
    return Path(path)


def tiny_animatediff_parts():
    from diffusers import MotionAdapter, UNet2DConditionModel

    unet2d = UNet2DConditionModel(
        sample_size=8, block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=32,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=TINY_TEXT_DIM, attention_head_dim=4,
    )
    adapter = MotionAdapter(
        block_out_channels=(32, 64), motion_layers_per_block=1, motion_num_attention_heads=8,
        motion_norm_num_groups=32, motion_max_seq_length=32, use_motion_mid_block=False,
    )
    return unet2d, adapter


def tiny_animatediff_scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_pretrained(str(CONFIGS_DIR / "animatediff"), subfolder="scheduler",
                                         local_files_only=True)
