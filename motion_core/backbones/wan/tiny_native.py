"""Tiny image-to-video Wan models whose every file ComfyUI core's own loaders read too, for the native-graph tests.

The tiny I2V models of tiny.py keep a 4x VAE, which core cannot load: core's VAELoader builds every Wan 2.1 VAE
with fixed level widths (dim_mult 1, 2, 4, 4), two residual blocks per level and the temporal downsamples of the
last two levels, and reads only the base width from the file. So the VAE here has exactly that shape with a base
width of 8: 0.9M parameters, 8x spatial and 4x temporal compression as the real one, and core's WanImageToVideo
(which sizes its latent as height // 8) lines up with it.

The Wan 2.2 TI2V form ("ti2v") has 48 latent channels in and out, as the 5B. Core's Wan 2.2 VAE has no free width
at all (base 160, decoder 256: 705M parameters), so its tiny VAE here has core's Wan 2.2 layout (residual levels,
2x2 pixel patches, 16x spatial) with small widths, and the real Wan 2.2 latent statistics, which core's Wan22 latent
format applies to every 48-channel latent.

Transformers follow core's Wan detection (model_detection.py): head dim 128, text width 4096, freq_dim 256; the CLIP
kind keeps img_emb's 1280-wide input. Text encoder and tokenizer are tiny.py's of the same seed.
"""

from __future__ import annotations

import json

import torch

from .files import CONFIGS_DIR
from .tiny import COMFY_FREQ_DIM, TINY_WAN_TEXT_DIM, tiny_wan_i2v_parts, tiny_wan_parts

KINDS = ("concat", "clip", "ti2v")
TI2V_Z_DIM = 48


def tiny_wan_native_parts(seed: int = 0, *, kind: str = "concat", shift: float = 3.0) -> dict:
    """Parts of a tiny Wan I2V model (denoiser, vae, text_encoder, tokenizer, scheduler, and image_encoder for
    "clip") that core loads as well: "concat" (36 input channels, as Wan 2.2 I2V A14B), "clip" (also CLIP-vision
    features, as Wan 2.1 I2V) or "ti2v" (48 channels, the first latent frame given, as Wan 2.2 TI2V 5B)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}; got {kind!r}")
    if kind == "ti2v":
        parts = tiny_wan_parts(seed, shift=shift, freq_dim=COMFY_FREQ_DIM)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 2)
            parts.update(denoiser=_ti2v_transformer(), vae=_wan22_layout_vae())
        return parts
    parts = tiny_wan_i2v_parts(seed, kind=kind, shift=shift, freq_dim=COMFY_FREQ_DIM)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 2)
        parts["vae"] = _core_layout_vae()
    return parts


def _core_layout_vae():
    """A Wan 2.1 VAE of the layout core's VAELoader builds, base width 8 (see the module doc)."""
    from diffusers import AutoencoderKLWan

    return AutoencoderKLWan(base_dim=8, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                            temperal_downsample=[False, True, True]).eval()


def _wan22_layout_vae():
    from diffusers import AutoencoderKLWan

    real = json.loads((CONFIGS_DIR / "wan_vae" / "wan2.2" / "config.json").read_text())
    return AutoencoderKLWan(base_dim=8, decoder_base_dim=8, z_dim=TI2V_Z_DIM, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                            temperal_downsample=[False, True, True], is_residual=True, in_channels=12,
                            out_channels=12, patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4,
                            latents_mean=real["latents_mean"], latents_std=real["latents_std"]).eval()


def _ti2v_transformer():
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=1, attention_head_dim=128, in_channels=TI2V_Z_DIM,
        out_channels=TI2V_Z_DIM, text_dim=TINY_WAN_TEXT_DIM, freq_dim=COMFY_FREQ_DIM, ffn_dim=256, num_layers=2,
        cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=64,
    )
