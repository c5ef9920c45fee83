"""Which layout a LoRA file uses, told from its keys alone (file names and headers are not reliable)."""

from __future__ import annotations

from ...errors import InvalidInputError
from . import animatediff, canonical, kohya

FORMATS = ("canonical", "animatediff", "kohya")


def detect_format(keys) -> str:
    """"animatediff", "kohya" or "canonical" (which also covers every diffusers/PEFT spelling)."""
    keys = list(keys)
    if kohya.looks_like(keys):
        return "kohya"
    # checked before diffusers/PEFT: both use "_lora.down.weight", only this one has temporal_transformer
    if animatediff.looks_like(keys):
        return "animatediff"
    if canonical.looks_like(keys):
        return "canonical"
    raise InvalidInputError(
        f"Cannot tell what kind of LoRA this is from its keys, e.g. {', '.join(sorted(keys)[:3]) or '(no keys)'}. "
        "Supported: diffusers/PEFT, kohya (lora_unet_*) and original AnimateDiff motion LoRAs."
    )
