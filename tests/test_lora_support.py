"""Shared builders for the LoRA tests: tiny real diffusers denoisers and randomised adapters.

Not a test module by content; it is named test_lora_* only to live beside the tests it serves.
"""

from __future__ import annotations

import torch
from diffusers import UNet3DConditionModel, UNetMotionModel

from motion_core.lora import AdapterSpec, add_adapter, adapter_parameters

FRAMES = 3


def tiny_unet3d(seed: int = 0) -> UNet3DConditionModel:
    torch.manual_seed(seed)
    return UNet3DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=32, attention_head_dim=8,
        norm_num_groups=8, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"), up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
    ).eval()


def frozen_tiny_unet3d(seed: int = 0) -> UNet3DConditionModel:
    """`tiny_unet3d` as attaching an adapter leaves it, frozen. On some CPUs (AVX512) a frozen model's forward takes
    another kernel path, ~1e-6 off the trainable one's even under no_grad, so 'unchanged' tests compare with this."""
    return tiny_unet3d(seed).requires_grad_(False)


def tiny_motion_unet(seed: int = 0) -> UNetMotionModel:
    torch.manual_seed(seed)
    return UNetMotionModel(
        block_out_channels=(32, 64), layers_per_block=1, cross_attention_dim=32, norm_num_groups=8, sample_size=8,
        in_channels=4, out_channels=4, num_attention_heads=2, motion_max_seq_length=8,
        down_block_types=("CrossAttnDownBlockMotion", "DownBlockMotion"),
        up_block_types=("UpBlockMotion", "CrossAttnUpBlockMotion"),
    ).eval()


def names(model, contains: str, endings=("to_q", "to_k", "to_v", "to_out.0")) -> list[str]:
    return [n for n, _ in model.named_modules() if contains in n and n.endswith(endings)]


def temporal_names(model) -> list[str]:
    key = "motion_modules" if isinstance(model, UNetMotionModel) else "temp_attentions"
    return names(model, key)


def spatial_names(model) -> list[str]:
    return [n for n in names(model, ".attentions.") if ".attn1." in n]


def inputs(model, seed: int = 1):
    """(sample, timestep, text) for one forward pass; UNetMotionModel wants text repeated per frame."""
    g = torch.Generator().manual_seed(seed)
    sample = torch.randn(1, 4, FRAMES, 8, 8, generator=g)
    text = torch.randn(1, 5, 32, generator=g)
    if isinstance(model, UNetMotionModel):
        text = text.repeat_interleave(FRAMES, dim=0)
    return sample, torch.tensor([10]), text


def run(model, seed: int = 1) -> torch.Tensor:
    sample, t, text = inputs(model, seed)
    with torch.no_grad():
        return model(sample, t, encoder_hidden_states=text).sample


def randomise(model, name: str, std: float = 0.2, seed: int = 3) -> None:
    """Random A and B: peft starts B at zero, which would make every round trip trivially pass."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in adapter_parameters(model, name):
            p.copy_(torch.randn(p.shape, generator=g) * std)


def add_random(model, name: str, modules, rank=4, alpha=8.0, seed=3, **kw) -> AdapterSpec:
    spec = AdapterSpec(name, tuple(modules), rank=rank, alpha=alpha, **kw)
    add_adapter(model, spec)
    randomise(model, name, seed=seed)
    return spec


def checksum(tensors) -> dict[str, float]:
    return {k: float(v.double().sum()) + float(v.double().abs().sum()) for k, v in tensors.items()}


def base_weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters() if ".lora_" not in k}
