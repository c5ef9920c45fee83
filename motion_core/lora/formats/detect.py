"""Which layout a LoRA file uses, told from its keys alone (file names and headers are not reliable)."""

from __future__ import annotations

from ...errors import InvalidInputError
from . import animatediff, canonical, kohya, sd15_comfy, wan_comfy

FORMATS = ("canonical", "animatediff", "kohya", "comfyui")
"""The layouts a LoRA can be saved in (detection also tells them apart on reading)."""


def detect_format(keys) -> str:
    """"comfyui" (ComfyUI's native layout: any Wan layout in original module names, i.e. ComfyUI's, ai-toolkit's and
    musubi-tuner's, or an SD1.5 UNet in original LDM names), "animatediff", "kohya" (diffusers or LDM module names) or
    "canonical" (which also covers every diffusers/PEFT spelling)."""
    keys = list(keys)
    # first: musubi-tuner's Wan keys start with lora_unet_ like kohya's, and ComfyUI's use lora_A like diffusers'
    if wan_comfy.looks_like(keys):
        return "comfyui"
    # before kohya: a ComfyUI SD1.5 file may carry a kohya-named (lora_te_) text-encoder part
    if sd15_comfy.looks_like(keys):
        return "comfyui"
    if kohya.looks_like(keys):
        return "kohya"
    # checked before diffusers/PEFT: both use "_lora.down.weight", only this one has temporal_transformer
    if animatediff.looks_like(keys):
        return "animatediff"
    if canonical.looks_like(keys):
        return "canonical"
    raise InvalidInputError(
        f"Cannot tell what kind of LoRA this is from its keys, e.g. {', '.join(sorted(keys)[:3]) or '(no keys)'}. "
        "Supported: diffusers/PEFT, kohya (lora_unet_*), original AnimateDiff motion LoRAs, ComfyUI's own SD1.5 "
        "layout (diffusion_model.input_blocks...) and Wan LoRAs in ComfyUI / ai-toolkit / musubi-tuner layouts."
    )
