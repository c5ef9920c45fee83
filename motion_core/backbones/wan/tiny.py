"""A tiny random-init Wan 2.1 built from the REAL classes (WanTransformer3DModel, AutoencoderKLWan, UMT5EncoderModel,
T5Tokenizer, FlowMatchEulerDiscreteScheduler), for tests and benchmarks of the Wan path. No download.

Two widths are NOT tiny, on purpose: ComfyUI's own Wan loader derives the head count as dim // 128 and fixes the text
width at 4096, so a tiny model that must mean the same thing in diffusers and in ComfyUI (the native-node tests load
what we train) has one head of 128 channels and 4096-wide text states. ComfyUI also fixes the sinusoidal timestep width
(freq_dim) at 256 where the tiny model has 32: files for core's own loader are made with ``freq_dim=COMFY_FREQ_DIM``
(the default stays 32 because other tests' training-loss checks were tuned on those weights). Everything else is
small: two blocks, a 256-wide feed-forward, a one-layer UMT5 with 8-channel heads.

The tiny VAE keeps the real latent layout: 16 channels (ComfyUI's Wan 2.1 latent format and empty-latent nodes assume
16, and its per-channel statistics are the real ones), temporal compression 4 (two temporal downsamples; diffusers'
encoder also reads clips in chunks of 4 frames after the first). It downsamples space by 4, so frames must be a
multiple of 8 pixels (4 x the transformer's 2x2 patch). A 5-frame 16x16 clip gives latents [1, 16, 2, 4, 4].

The tokenizer is a T5 (Unigram) tokenizer over an in-memory character vocabulary: pad 0, eos 1, unk 2 as in UMT5, then
the metaspace "▁" and the printable ASCII and Latin-1 characters, so any prompt tokenizes (other characters map to unk).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..base import move

TINY_WAN_TEXT_DIM = 4096
TINY_WAN_MAX_TOKENS = 32
TINY_WAN_Z_DIM = 16
CLIP_VISION_DIM = 1280
"""Width of the CLIP vision features Wan 2.1 I2V reads (clip_vision_h's hidden size)."""
COMFY_FREQ_DIM = 256
"""The timestep-embedding width ComfyUI 0.3.75's Wan detection assumes (it does not read it from the weights)."""


def tiny_wan_backbone(seed: int = 0, *, dtype: torch.dtype = torch.float32, device="cpu", shift: float = 3.0):
    """A ready WanBackbone with random weights drawn from ``seed`` (base weights frozen, denoiser in train mode)."""
    from .backbone import WanBackbone

    parts = tiny_wan_parts(seed, shift=shift)
    for name in ("denoiser", "vae", "text_encoder"):
        move(parts[name], device, dtype).requires_grad_(False)
    parts["denoiser"].train()
    parts["vae"].eval()
    parts["text_encoder"].eval()
    return WanBackbone(**parts, device=device, dtype=dtype, source=f"tiny-wan-seed{seed}")


def tiny_wan_i2v_backbone(seed: int = 0, *, kind: str = "concat", dtype: torch.dtype = torch.float32, device="cpu",
                          shift: float = 3.0):
    """A ready tiny image-to-video WanBackbone: ``kind`` "concat" (36 input channels, as Wan 2.2 I2V A14B), "clip"
    (also CLIP-vision features through k_img / v_img, as Wan 2.1 I2V) or "first_frame" (the T2V tiny model taking the
    image as its clean first latent frame, as Wan 2.2 TI2V 5B)."""
    from .backbone import WanBackbone

    parts = tiny_wan_i2v_parts(seed, kind=kind, shift=shift)
    image_encoder = parts.pop("image_encoder", None)
    for part in ("denoiser", "vae", "text_encoder"):
        move(parts[part], device, dtype).requires_grad_(False)
    parts["denoiser"].train()
    backbone = WanBackbone(**parts, device=device, dtype=dtype, source=f"tiny-wan-i2v-{kind}-seed{seed}")
    backbone.first_frame_conditioning = kind == "first_frame"
    if image_encoder is not None:
        backbone.image_encoder = move(image_encoder, device, dtype).requires_grad_(False).eval()
    return backbone


def tiny_wan_i2v_parts(seed: int = 0, *, kind: str = "concat", shift: float = 3.0,
                       freq_dim: int = 32) -> dict:
    """The tiny Wan's parts with an image-to-video transformer (and, for "clip", an ``image_encoder``): the VAE, text
    encoder and tokenizer are the T2V tiny model's of the same seed."""
    if kind not in ("concat", "clip", "first_frame"):
        raise ValueError(f"kind must be concat, clip or first_frame; got {kind!r}")
    parts = tiny_wan_parts(seed, shift=shift, freq_dim=freq_dim)
    if kind == "first_frame":
        return parts
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        parts["denoiser"] = _tiny_transformer(freq_dim, i2v=True, image=kind == "clip")
        if kind == "clip":
            parts["image_encoder"] = _tiny_clip_vision()
    return parts


def tiny_wan_parts(seed: int = 0, *, shift: float = 3.0, freq_dim: int = 32) -> dict:
    """The five components (denoiser, vae, text_encoder, tokenizer, scheduler), float32 on the CPU; the same seed
    gives the same weights, drawn in a fixed order under a forked RNG (the caller's RNG state is untouched)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        parts = dict(denoiser=_tiny_transformer(freq_dim), vae=_tiny_vae(), text_encoder=_tiny_umt5())
    parts["tokenizer"] = tiny_wan_tokenizer()
    parts["scheduler"] = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=float(shift))
    return parts


def save_tiny_wan_diffusers_folder(path, seed: int = 0, *, shift: float = 3.0) -> Path:
    """Write the tiny Wan as a WanPipeline diffusers folder (model_index.json, transformer/, vae/, text_encoder/,
    tokenizer/, scheduler/) for loader tests; the same seed gives the same weights as ``tiny_wan_backbone``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    parts = tiny_wan_parts(seed, shift=shift)
    index = {"_class_name": "WanPipeline", "_diffusers_version": "0.42.1"}
    folders = {"transformer": "denoiser", "vae": "vae", "text_encoder": "text_encoder", "tokenizer": "tokenizer",
               "scheduler": "scheduler"}
    for folder, part in folders.items():
        component = parts[part]
        component.save_pretrained(path / folder)
        library = "transformers" if folder in ("text_encoder", "tokenizer") else "diffusers"
        index[folder] = [library, type(component).__name__]
    (path / "model_index.json").write_text(json.dumps(index, indent=2))
    return path


def save_tiny_wan_i2v_diffusers_folder(path, seed: int = 0, *, kind: str = "concat", two_experts: bool = False,
                                       shift: float = 3.0) -> Path:
    """Write a tiny image-to-video Wan as the folder diffusers saves: "clip" and "concat" as a WanImageToVideoPipeline
    (image_encoder/ and image_processor/ for "clip", null for "concat" as in Wan 2.2 I2V A14B, which with
    ``two_experts`` also gets transformer_2/ from the next seed and boundary_ratio 0.9), "first_frame" as a
    WanPipeline with expand_timesteps, as Wan 2.2 TI2V 5B. The same seed gives ``tiny_wan_i2v_parts``' weights."""
    from .releases import I2V_BOUNDARY

    path = save_tiny_wan_diffusers_folder(path, seed, shift=shift)
    index = json.loads((path / "model_index.json").read_text())
    if kind == "first_frame":
        index["expand_timesteps"] = True
        (path / "model_index.json").write_text(json.dumps(index, indent=2))
        return path
    parts = tiny_wan_i2v_parts(seed, kind=kind, shift=shift)
    parts["denoiser"].save_pretrained(path / "transformer")
    index.update(_class_name="WanImageToVideoPipeline", image_encoder=[None, None], image_processor=[None, None],
                 transformer_2=[None, None], boundary_ratio=None, expand_timesteps=False)
    if kind == "clip":
        from transformers import CLIPImageProcessor

        parts["image_encoder"].save_pretrained(path / "image_encoder")
        CLIPImageProcessor(size={"shortest_edge": 224}, crop_size=224).save_pretrained(path / "image_processor")
        index.update(image_encoder=["transformers", "CLIPVisionModel"],
                     image_processor=["transformers", "CLIPImageProcessor"])
    if two_experts:
        tiny_wan_i2v_parts(seed + 1, kind=kind, shift=shift)["denoiser"].save_pretrained(path / "transformer_2")
        index.update(transformer_2=["diffusers", "WanTransformer3DModel"], boundary_ratio=I2V_BOUNDARY)
    (path / "model_index.json").write_text(json.dumps(index, indent=2))
    return path


def tiny_wan_tokenizer(model_max_length: int = TINY_WAN_MAX_TOKENS):
    """A T5Tokenizer (UMT5's class) over a character vocabulary built in memory."""
    from transformers import T5Tokenizer

    characters = [chr(c) for c in (*range(0x21, 0x7F), *range(0xA1, 0x100)) if chr(c) != "▁"]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)] + [(c, -3.0) for c in characters]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=model_max_length)


# ---- component builders (call under a seeded RNG) ----------------------------------------------------------------
def _tiny_transformer(freq_dim: int = 32, *, i2v: bool = False, image: bool = False):
    """``i2v``/``image``: the image-to-video layout (noise + 4 mask + 16 image channels in; ``image``: also CLIP
    features of CLIP_VISION_DIM through added k/v projections, as core's detection expects)."""
    from diffusers import WanTransformer3DModel

    extra = dict(image_dim=CLIP_VISION_DIM, added_kv_proj_dim=128) if image else {}
    in_channels = 2 * TINY_WAN_Z_DIM + 4 if (i2v or image) else TINY_WAN_Z_DIM
    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=1, attention_head_dim=128, in_channels=in_channels,
        out_channels=TINY_WAN_Z_DIM, text_dim=TINY_WAN_TEXT_DIM, freq_dim=freq_dim, ffn_dim=256, num_layers=2,
        cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=64, **extra,
    )


def _tiny_clip_vision():
    """A two-layer CLIPVisionModel of the real width (1280, as clip_vision_h) and token count (257: 224 px in 14 px
    patches plus the class token), which Wan 2.1 I2V's image embedder and core's I2V attention assume. Its heads
    (16 of 80 channels) and GELU are ViT-H/14's, what a 1280-wide CLIP vision file means to the loader (a file's
    shapes do not record them), so the tiny model written as a file loads back as itself."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    config = CLIPVisionConfig(hidden_size=CLIP_VISION_DIM, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=16, image_size=224, patch_size=14, projection_dim=64,
                              hidden_act="gelu")
    return CLIPVisionModel(config).eval()


def _tiny_vae():
    from diffusers import AutoencoderKLWan

    # dim_mult of three levels = two downsamples in space, both also in time: 4x spatial, 4x temporal.
    return AutoencoderKLWan(
        base_dim=8, z_dim=TINY_WAN_Z_DIM, dim_mult=[1, 2, 2], num_res_blocks=1, temperal_downsample=[True, True],
        scale_factor_temporal=4, scale_factor_spatial=4,
    )


def _tiny_umt5():
    from transformers import UMT5Config, UMT5EncoderModel

    vocab_size = len(tiny_wan_tokenizer())
    config = UMT5Config(
        vocab_size=vocab_size, d_model=TINY_WAN_TEXT_DIM, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
        relative_attention_num_buckets=8, relative_attention_max_distance=32, feed_forward_proj="gated-gelu",
        dropout_rate=0.0, pad_token_id=0, eos_token_id=1,
    )
    return UMT5EncoderModel(config).eval()
