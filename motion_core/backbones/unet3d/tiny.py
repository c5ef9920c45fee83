"""A tiny random-init ModelScope/ZeroScope backbone from the REAL classes (UNet3DConditionModel, AutoencoderKL,
CLIPTextModel), for tests and benchmarks: the same module names and code paths, a few thousand parameters."""

from __future__ import annotations

import torch

from ..tiny_clip import TINY_TEXT_DIM, ready_tiny, tiny_clip_text_encoder, tiny_clip_vae

PIPELINE = "TextToVideoSDPipeline"


def tiny_unet3d_backbone(seed: int = 0, *, dtype: torch.dtype = torch.float32, device="cpu"):
    """A ready UNet3DBackbone (ModelScope/ZeroScope layout) with random weights drawn from ``seed``."""
    from .backbone import UNet3DBackbone

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        parts = dict(denoiser=tiny_unet3d_denoiser(), vae=tiny_clip_vae(), text_encoder=tiny_clip_text_encoder())
    return ready_tiny(UNet3DBackbone, parts, tiny_unet3d_scheduler(), dtype, device, f"tiny-unet3d-seed{seed}")


# ---- component builders (call under a seeded RNG) ----------------------------------------------------------------
def tiny_unet3d_denoiser():
    from diffusers import UNet3DConditionModel

    return UNet3DConditionModel(
        sample_size=8, block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=32,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"), up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=TINY_TEXT_DIM, attention_head_dim=4,
    )


def tiny_unet3d_scheduler():
    from diffusers import DDIMScheduler

    # ModelScope's training schedule (scaled_linear 0.00085..0.012, epsilon).
    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=False, prediction_type="epsilon")
