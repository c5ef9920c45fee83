"""kohya layout, the common spelling of appearance (spatial) LoRAs.

``lora_unet_<module path with dots as underscores>.lora_down.weight`` (= lora_A), ``.lora_up.weight`` (= lora_B)
and a scalar ``.alpha``; the effect is up @ down * alpha / rank, the same scaling as peft, so no weights change.
Flattening dots to underscores loses information ("down_blocks_0" could be "down_blocks.0" or a name with an
underscore), so reading needs the model's module names to resolve each key. Files made from single-file SD1.5
checkpoints flatten the original (LDM) names instead (``lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q``);
those resolve through the model's LDM names (sd15_original), so either spelling reads into the same modules.
"""

from __future__ import annotations

import re

import torch

from ...errors import InvalidInputError, LoraMismatchError
from ..metadata import encode_header
from ..motion_lora import MotionLora
from ..state import canonical_key
from .sd15_original import original_names

PREFIX = "lora_unet_"
_KEY = re.compile(r"^lora_unet_(?P<m>.+?)\.(?P<w>lora_down\.weight|lora_up\.weight|alpha)$")
_TEXT_ENCODER = re.compile(r"^lora_te\d?_")


def looks_like(keys) -> bool:
    return any(k.startswith(PREFIX) or _TEXT_ENCODER.match(k) for k in keys)


def flat_name(module: str) -> str:
    return module.replace(".", "_")


def to_kohya_file(lora: MotionLora) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    tensors: dict[str, torch.Tensor] = {}
    seen: dict[str, str] = {}
    for module in lora.modules():
        flat = flat_name(module)
        if flat in seen:
            raise InvalidInputError(
                f"Modules {seen[flat]} and {module} share the kohya name {flat}; export in canonical format instead."
            )
        seen[flat] = module
        a, b = lora.weights(module)
        tensors[f"{PREFIX}{flat}.lora_down.weight"] = a
        tensors[f"{PREFIX}{flat}.lora_up.weight"] = b
        tensors[f"{PREFIX}{flat}.alpha"] = torch.tensor(lora.module_alpha(module), dtype=torch.float32)
    return tensors, encode_header({**lora.metadata, "source_format": "kohya"})


def from_kohya_file(tensors: dict[str, torch.Tensor], header: dict[str, str] | None,
                    module_names, metadata: dict | None = None) -> MotionLora:
    """Resolve flattened names against ``module_names`` (the denoiser's ``named_modules()`` names)."""
    if module_names is None:
        raise InvalidInputError(
            "A kohya LoRA names modules with underscores only, so reading it needs the model: pass the "
            "denoiser's module names (load the base model first)."
        )
    module_names = list(module_names)
    # LDM and diffusers names never flatten alike (input_blocks_/middle_block_/output_blocks_ vs down_blocks_/...)
    lookup = {flat_name(ldm): n for ldm, n in original_names(module_names).items()}
    lookup.update({flat_name(n): n for n in module_names if n})
    weights: dict[str, torch.Tensor] = {}
    alphas: dict[str, float] = {}
    unmatched, unreadable, text_encoder = [], [], []
    for key, tensor in tensors.items():
        if _TEXT_ENCODER.match(key):
            text_encoder.append(key)
            continue
        match = _KEY.match(key)
        if not match:
            unreadable.append(key)
            continue
        module = lookup.get(match.group("m"))
        if module is None:
            unmatched.append(key)
        elif match.group("w") == "alpha":
            alphas[module] = float(tensor.float().reshape(-1)[0])
        else:
            weights[canonical_key(module, "A" if match.group("w").startswith("lora_down") else "B")] = tensor
    if unreadable:
        raise InvalidInputError(
            f"{len(unreadable)} keys of this kohya file are not plain LoRA weights (LyCORIS/LoHa/LoKr are not "
            f"supported), e.g. {', '.join(sorted(unreadable)[:3])}."
        )
    if unmatched:
        raise LoraMismatchError(
            f"{len(unmatched)} keys of this kohya LoRA target modules the model does not have, e.g. "
            f"{', '.join(sorted(unmatched)[:3])}. It was made for another architecture (e.g. SDXL, or an SD1.5 UNet "
            "for another model family); load a LoRA made for this model's family."
        )
    if not weights:
        raise InvalidInputError("This kohya LoRA holds only text-encoder weights; it has nothing for the denoiser.")
    modules = {k[len("unet."):-len(".lora_A.weight")]: t for k, t in weights.items() if k.endswith(".lora_A.weight")}
    # kohya's convention: a module without an alpha key uses alpha = rank (scale 1).
    per_module = {m: alphas.get(m, float(t.shape[0])) for m, t in modules.items()}
    meta = dict(metadata or {})
    meta.setdefault("kind", "appearance")
    if not meta.get("alpha"):
        meta["alpha"] = max(set(per_module.values()), key=list(per_module.values()).count)
    meta["alpha_pattern"] = per_module
    meta["source_format"] = "kohya"
    if text_encoder:
        meta["extra"] = {**meta.get("extra", {}), "skipped_components": ["text_encoder"]}
    return MotionLora(weights, meta)
