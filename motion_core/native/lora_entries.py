"""Our LoRAs (MD_LORA, MD_LORA_STACK) as what core's LoRA loader reads: one key -> tensor dict per LoRA, with the
strength and schedule range it should act with on a native MODEL.

Only Wan runs natively in ComfyUI core among the families the pack trains: core has no AnimateDiff model (that is
AnimateDiff-Evolved's, which reads our ``animatediff`` export) and no ModelScope/ZeroScope UNet3D (those sample in
Sample Video only). A Wan LoRA goes through the same writer as the ``comfyui`` file format (formats/wan_comfy.py),
so a LoRA applied here in-graph and the same LoRA saved and loaded with core's LoraLoaderModelOnly are one thing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InvalidInputError, LoraMismatchError
from ..lora.formats.wan_comfy import to_comfy_wan_file
from ..lora.motion_lora import MotionLora
from ..lora.stack import LoraStack
from ..numbers import finite
from .schedule import check_range, intersect

NATIVE_FAMILIES = ("wan",)
"""Families whose denoiser ComfyUI core loads as a native MODEL (UNETLoader)."""


@dataclass(frozen=True, eq=False)
class NativeLora:
    """One LoRA ready for a native MODEL: ``state_dict`` in core's Wan LoRA layout (``diffusion_model.<module>``
    with lora_A / lora_B / alpha, and ``.diff`` / ``.diff_b`` for the LoRA's full-weight patches), to act at
    ``strength`` over [start_percent, end_percent) of the schedule."""

    name: str
    state_dict: dict[str, torch.Tensor]
    strength: float
    start_percent: float
    end_percent: float

    @property
    def modules(self) -> int:
        """How many parameters it patches, which is how many entries core's ``load_lora`` must make, none left
        over: each layer's weight (its lora_A, or a full-weight ``.diff``) and each ``.diff_b`` bias patch."""
        weights = {key[: -len(".lora_A.weight")] for key in self.state_dict if key.endswith(".lora_A.weight")}
        weights |= {key[: -len(".diff")] for key in self.state_dict if key.endswith(".diff")}
        return len(weights) + sum(1 for key in self.state_dict if key.endswith(".diff_b"))


def native_state_dict(lora: MotionLora) -> dict[str, torch.Tensor]:
    """The LoRA's weights in core's native layout, or an error that says which families core runs natively."""
    family = lora.family or ""
    if family and family not in NATIVE_FAMILIES:
        raise InvalidInputError(
            f"LoRA '{lora.name or '(unnamed)'}' is for {family} models, which ComfyUI core does not run as a native "
            f"MODEL: core runs only {', '.join(NATIVE_FAMILIES)} (Wan 2.1 / 2.2) natively. Use Sample Video for "
            "ZeroScope/ModelScope, or save an AnimateDiff LoRA in the animatediff format for AnimateDiff-Evolved.")
    try:
        tensors, _header = to_comfy_wan_file(lora)
    except (InvalidInputError, LoraMismatchError) as err:
        raise InvalidInputError(
            f"LoRA '{lora.name or '(unnamed)'}' has no native Wan layout: {err} Only Wan LoRAs apply to a native "
            "MODEL.") from None
    return tensors


def native_loras(lora: MotionLora | LoraStack, strength: float = 1.0, start_percent: float = 0.0,
                 end_percent: float = 1.0) -> list[NativeLora]:
    """One LoRA, or every entry of a stack, as NativeLora values.

    A stack keeps each entry's own strength and range; ``strength`` then scales them all and the range narrows
    them (an entry acts where its range and this one overlap). Entries that could never act (strength 0, or no
    overlap) are left out, so they cost nothing at sampling time."""
    outer = check_range(start_percent, end_percent, "Apply Motion LoRA")
    # A NaN strength (a hand-edited or broken saved workflow) would make every sampled latent NaN.
    strength = finite(strength, "Apply Motion LoRA: strength", "1.0 (0 turns the LoRA off)")
    if isinstance(lora, MotionLora):
        entries = [(lora, 1.0, (0.0, 1.0))]
    elif isinstance(lora, LoraStack):
        entries = [(e.lora, e.strength, (e.start_percent, e.end_percent)) for e in lora]
    else:
        raise InvalidInputError(f"Expected a LoRA or a LoRA stack; got {type(lora).__name__}.")
    out = []
    for motion_lora, own_strength, own_range in entries:
        acting = intersect(outer, own_range)
        total = finite(strength * float(own_strength), f"LoRA '{motion_lora.name}': strength x stack strength")
        if acting is None or total == 0.0:
            continue
        out.append(NativeLora(motion_lora.name or "(unnamed)", native_state_dict(motion_lora), total, *acting))
    return out
