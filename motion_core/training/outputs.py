"""Turning trained adapters into MotionLora values with the full description the LoRA file format asks for."""

from __future__ import annotations

from ..backbones.wan.experts import loaded_expert
from ..lora import MotionLora, lora_from_adapter


def build_loras(backbone, recipe, *, adapter_names: dict[str, str], captions: list[str], config, settings,
                steps_done: int, name: str) -> tuple[MotionLora, list[MotionLora]]:
    """(motion LoRA, appearance LoRAs). Appearance LoRAs made one per clip carry that clip's caption."""
    base_name = name or recipe.name
    common = {
        "family": backbone.family,
        "recipe": recipe.name,
        "frames": config.frames,
        "resolution": [config.width, config.height],
        "steps": steps_done,
        "base_fingerprint": backbone.fingerprint(),
        "trigger": str(getattr(recipe.config, "trigger", "") or ""),
        # A Wan 2.2 A14B LoRA belongs to the expert it was trained on (saved as <name>_high_noise / _low_noise).
        **({"wan_expert": expert} if (expert := loaded_expert(backbone)) else {}),
        "extra": {"training": {"lr": settings.lr, "weight_decay": settings.weight_decay, "seed": config.seed,
                               "lr_schedule": settings.lr_schedule, "clips": len(captions),
                               "recipe_config": recipe.config.to_dict()}},
    }
    denoiser = backbone.denoiser
    motion = lora_from_adapter(denoiser, adapter_names[recipe.motion_adapter], name=f"{base_name}_motion",
                               caption=captions[0] if captions else "", **common)
    appearance_names = recipe.appearance_adapters(len(captions))
    per_clip = len(appearance_names) == len(captions) > 1
    appearance = []
    for i, adapter in enumerate(appearance_names):
        suffix = f"_{i}" if len(appearance_names) > 1 else ""
        appearance.append(lora_from_adapter(
            denoiser, adapter_names[adapter], name=f"{base_name}_appearance{suffix}",
            caption=captions[i] if per_clip else captions[0], **common))
    return motion, appearance
