"""Wan models of the real architectures (the configs the loader ships) with random weights, for benchmarks.

Time and memory depend on the shapes, not on the weights' values, and no download is possible where the benchmarks
run. The transformer is built on the meta device and allocated once, directly in the wanted dtype and device: the
default init of 1.3B parameters in float32 on a CPU would take minutes and twice the memory of the bf16 model.
"""

from __future__ import annotations

import json

import torch

from ..backbones.base import move
from ..backbones.wan import CONFIGS_DIR

TRANSFORMERS = {
    "wan2.1_t2v_1.3b": "wan2.1_t2v_1.3b",
    "wan2.1_t2v_14b": "wan2.1_t2v_14b",
}
"""Variant name -> folder of configs/wan_transformer (both use the Wan 2.1 VAE and UMT5-XXL)."""



def random_init(model: torch.nn.Module, seed: int = 0, device="cpu") -> None:
    """Weights N(0, 0.02), norms 1 and biases 0: a real architecture's step costs without its released weights."""
    g = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim > 1:
                p.normal_(0.0, 0.02, generator=g)
            else:
                p.fill_(0.0 if name.endswith("bias") else 1.0)

def wan_transformer(variant: str = "wan2.1_t2v_1.3b", *, device="cpu", dtype=torch.bfloat16, seed: int = 0):
    """A WanTransformer3DModel of ``variant`` with random weights, frozen, in train mode.

    Matrices get N(0, 0.02), biases 0 and norm weights 1, so activations stay finite through all blocks (a NaN
    loss would stop the trainer the GPU bench runs). The RoPE tables are non-persistent buffers that the meta build
    leaves empty; they are recomputed, as the loader does for single files."""
    from diffusers import WanTransformer3DModel
    from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed

    config = WanTransformer3DModel.load_config(str(CONFIGS_DIR / "wan_transformer" / TRANSFORMERS[variant]))
    with torch.device("meta"):
        model = WanTransformer3DModel.from_config(config)
    model = move(model, dtype=dtype).to_empty(device=device)
    random_init(model, seed, device)
    c = model.config
    model.rope = WanRotaryPosEmbed(c.attention_head_dim, c.patch_size, c.rope_max_seq_len)
    return move(model, device, dtype).requires_grad_(False).train()


def wan_scheduler():
    """Wan 2.1 T2V's training scheduler (flow matching, shift 3) from the shipped config."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler.from_pretrained(str(CONFIGS_DIR / "wan_scheduler" / "wan2.1_t2v"))


def denoiser_only_backbone(variant: str = "wan2.1_t2v_1.3b", *, dtype=torch.bfloat16):
    """A CPU WanBackbone with just the real transformer and scheduler: enough for a training step on cached
    latents and text states (what the memory measurement runs), without the 11 GB text encoder."""
    from ..backbones.wan.backbone import WanBackbone

    return WanBackbone(denoiser=wan_transformer(variant, dtype=dtype), vae=None, text_encoder=None, tokenizer=None,
                       scheduler=wan_scheduler(), device=torch.device("cpu"), dtype=dtype,
                       source=f"random-{variant}")


def full_backbone(variant: str, device, dtype):
    """A ready WanBackbone of the real transformer, Wan 2.1 VAE and UMT5-XXL text encoder, all random, on
    ``device``: the GPU bench's model. The tokenizer is the tiny character one, capped at Wan's 512 tokens, so the
    text states have the real shape [B, 512, 4096]."""
    from diffusers import AutoencoderKLWan
    from transformers import UMT5Config, UMT5EncoderModel

    from ..backbones.base import ready
    from ..backbones.wan.backbone import MAX_TEXT_TOKENS, WanBackbone
    from ..backbones.wan.tiny import tiny_wan_tokenizer

    denoiser = wan_transformer(variant, device=device, dtype=dtype)
    torch.manual_seed(0)
    vae_name = "wan2.2" if int(denoiser.config.out_channels) == 48 else "wan2.1"  # TI2V 5B's 48-channel VAE
    with torch.device(device):
        vae = AutoencoderKLWan.from_config(AutoencoderKLWan.load_config(str(CONFIGS_DIR / "wan_vae" / vae_name)))
        text_config = json.loads((CONFIGS_DIR / "umt5_xxl" / "config.json").read_text())
        text_encoder = UMT5EncoderModel(UMT5Config(**text_config))
    return ready(WanBackbone, denoiser, vae, text_encoder, tiny_wan_tokenizer(MAX_TEXT_TOKENS), wan_scheduler(),
                 dtype, torch.device(device), f"random-{variant}")


def clip_vision_h(device, dtype):
    """CLIP ViT-H/14 vision tower (clip_vision_h's config, random weights): what Wan 2.1 I2V reads features from."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    config = json.loads((CONFIGS_DIR / "clip_vision_h" / "config.json").read_text())
    config.pop("architectures", None)
    torch.manual_seed(0)
    with torch.device(device):
        model = CLIPVisionModel(CLIPVisionConfig(**config))
    return model.to(dtype).requires_grad_(False).eval()
