"""Base models whose LoRAs apply to one another on the layers they share.

Why: Wan 2.1 I2V 14B is Wan 2.1 T2V 14B with a wider input (the start image's latents and mask beside the noise) and,
for 2.1, an image cross-attention; every attention and feed-forward layer has the same shape in both. Users apply
text-to-video motion LoRAs to the image-to-video model and expect them to act. The strict base check (LoRA
fingerprint = model fingerprint) would refuse that; a relation declared by the model family lets the LoRA apply where
the layers coincide, with a report of what was left out, while LoRAs of unrelated models are still refused.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RelatedBase:
    """A base model whose LoRAs also apply to this one, on the layers the two share: the same architecture but for a
    few input layers (e.g. a text-to-video model and its image-to-video form). Its LoRAs are applied with a report of
    the layers left out, not refused by the strict base check."""

    fingerprint: str
    label: str
    """What to call it in reports, e.g. "the text-to-video Wan of this size"."""
    differing: tuple[str, ...] = ()
    """Layers (module names) whose shapes differ between the two; a LoRA with no recorded base that misses only
    these is taken as one of that base's."""
