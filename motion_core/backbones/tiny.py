"""Tiny random-init backbones built from the REAL classes, for tests and benchmarks of every part of the engine.

They have the same module names, layouts and code paths as ModelScope/ZeroScope and AnimateDiff (so target sets,
LoRA keys, checkpointing and loaders are exercised for real), but a few thousand parameters each and no download:
the CLIP tokenizer gets an in-memory byte-level vocabulary (every byte as a token, no merges), which tokenizes any
text. Frames must be a multiple of 2 pixels (the tiny VAE downsamples once); latents have 4 channels.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .base import move

TINY_TEXT_DIM = 32
TINY_VAE_SCALE = 2


def tiny_unet3d_backbone(seed: int = 0, *, dtype: torch.dtype = torch.float32, device="cpu"):
    """A ready UNet3DBackbone (ModelScope/ZeroScope layout) with random weights drawn from ``seed``."""
    from .unet3d import UNet3DBackbone

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        parts = dict(denoiser=_tiny_unet3d(), vae=_tiny_vae(), text_encoder=_tiny_text_encoder())
    return _ready(UNet3DBackbone, parts, _unet3d_scheduler(), dtype, device, f"tiny-unet3d-seed{seed}")


def tiny_animatediff_backbone(seed: int = 0, *, dtype: torch.dtype = torch.float32, device="cpu"):
    """A ready AnimateDiffBackbone (SD1.5 UNet + v3-style motion adapter, no motion mid block) from ``seed``."""
    from .animatediff import AnimateDiffBackbone
    from .loading import combine_unet_and_motion_adapter

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # draw order as in save_tiny_diffusers_folder, so both give the same weights
        unet2d, adapter = _tiny_animatediff_parts()
        parts = dict(vae=_tiny_vae(), text_encoder=_tiny_text_encoder())
    parts["denoiser"] = combine_unet_and_motion_adapter(unet2d, adapter)
    return _ready(AnimateDiffBackbone, parts, _animatediff_scheduler(), dtype, device, f"tiny-animatediff-seed{seed}")


def save_tiny_diffusers_folder(path, family: str = "unet3d", seed: int = 0, *, with_motion_adapter: bool = True):
    """Write a tiny model as a diffusers folder (model_index.json + one subfolder per component) for loader tests.

    family "unet3d": a TextToVideoSDPipeline folder. family "animatediff": an AnimateDiffPipeline folder (SD1.5-style
    unet + motion_adapter); with_motion_adapter=False writes a plain StableDiffusionPipeline folder instead, which
    needs a separate motion module. The same seed gives the same weights as the tiny_*_backbone builders."""
    from diffusers import DDIMScheduler

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if family == "unet3d":
            components = {"unet": _tiny_unet3d()}
            pipeline, scheduler_config = "TextToVideoSDPipeline", _unet3d_scheduler().config
        elif family == "animatediff":
            unet2d, adapter = _tiny_animatediff_parts()
            components = {"unet": unet2d, "motion_adapter": adapter}
            pipeline, scheduler_config = "AnimateDiffPipeline", _animatediff_scheduler().config
            if not with_motion_adapter:
                del components["motion_adapter"]
                pipeline = "StableDiffusionPipeline"
        else:
            raise ValueError(f"Unknown tiny family {family!r}; use 'unet3d' or 'animatediff'.")
        components.update(vae=_tiny_vae(), text_encoder=_tiny_text_encoder())
    index = {"_class_name": pipeline, "_diffusers_version": "0.42.1"}
    for name, module in components.items():
        module.save_pretrained(path / name)
        library = "transformers" if name == "text_encoder" else "diffusers"
        index[name] = [library, type(module).__name__]
    tiny_tokenizer().save_pretrained(path / "tokenizer")
    index["tokenizer"] = ["transformers", "CLIPTokenizer"]
    DDIMScheduler.from_config(scheduler_config).save_pretrained(path / "scheduler")
    index["scheduler"] = ["diffusers", "DDIMScheduler"]
    (path / "model_index.json").write_text(json.dumps(index, indent=2))
    return path


def save_tiny_motion_module_file(path, seed: int = 0):
    """Write the tiny AnimateDiff motion adapter as a single .safetensors file in the ORIGINAL AnimateDiff key layout
    (``...motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0...``, with pos_encoder.pe),
    the layout of mm_sd_v15_v2.ckpt / v3_sd15_mm.ckpt, so the loader's conversion path is tested."""
    from safetensors.torch import save_file

    from .motion_module import to_original_layout

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _, adapter = _tiny_animatediff_parts()
    original = {k: v.clone() for k, v in to_original_layout(adapter.state_dict()).items()}
    save_file(original, str(path))
    return Path(path)


def tiny_tokenizer(model_max_length: int = 77):
    """A CLIPTokenizer over a byte-level vocabulary built in memory (512 byte tokens + start/end)."""
    from transformers import CLIPTokenizer

    symbols = _bytes_to_unicode()
    vocab = {s: i for i, s in enumerate(symbols)}
    vocab.update({s + "</w>": len(symbols) + i for i, s in enumerate(symbols)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


# ---- component builders (call under a seeded RNG) ----------------------------------------------------------------
def _tiny_unet3d():
    from diffusers import UNet3DConditionModel

    return UNet3DConditionModel(
        sample_size=8, block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=32,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"), up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=TINY_TEXT_DIM, attention_head_dim=4,
    )


def _tiny_animatediff_parts():
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


def _tiny_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32), layers_per_block=1,
        norm_num_groups=8, down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        sample_size=16, scaling_factor=0.18215,
    )


def _tiny_text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=514, hidden_size=TINY_TEXT_DIM, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=77, bos_token_id=512, eos_token_id=513, pad_token_id=513, projection_dim=TINY_TEXT_DIM,
    )
    return CLIPTextModel(config).eval()


def _unet3d_scheduler():
    from diffusers import DDIMScheduler

    # ModelScope's training schedule (scaled_linear 0.00085..0.012, epsilon).
    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=False, prediction_type="epsilon")


def _animatediff_scheduler():
    from diffusers import DDIMScheduler

    from .motion_module import CONFIGS_DIR

    return DDIMScheduler.from_pretrained(str(CONFIGS_DIR / "animatediff"), subfolder="scheduler",
                                         local_files_only=True)


def _ready(cls, parts, scheduler, dtype, device, source):
    for module in parts.values():
        move(module, device, dtype).requires_grad_(False)
    parts["denoiser"].train()
    parts["vae"].eval()
    return cls(**parts, tokenizer=tiny_tokenizer(), scheduler=scheduler, device=device, dtype=dtype, source=source)


def _bytes_to_unicode() -> list[str]:
    """GPT-2/CLIP's printable stand-ins for the 256 byte values, in CLIP's vocabulary order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes, extra = printable[:], 0
    for byte in range(256):
        if byte not in printable:
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]
