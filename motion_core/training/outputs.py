"""What a training run returns: its LoRAs, built from the trained adapters with the full description the LoRA file
format asks for, and the run's record (history, checkpoint, warnings, memory plan)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..backbones.wan.experts import loaded_expert
from ..lora import MotionLora, lora_from_adapter


@dataclass
class TrainingResult:
    motion_lora: MotionLora
    appearance_loras: list[MotionLora]
    history: list[dict]
    """One dict per step: step (1-based), stage, lr, and the recipe's loss terms including "total"."""
    checkpoint: Path | None
    """The last checkpoint written (None when checkpoint_every is 0)."""
    steps_done: int
    warnings: list[str] = dataclasses.field(default_factory=list)
    """Things that went wrong without losing the result (e.g. the final checkpoint could not be written)."""
    memory_plan: object = None
    """The run's training.memory_plan.MemoryPlan (predicted peaks, chosen settings; ``summary()`` to show it), or
    None where no plan could be made."""


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
