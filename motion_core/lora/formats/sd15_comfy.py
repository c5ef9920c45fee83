"""SD1.5 UNet LoRAs in ComfyUI's own layout (read only): what core's Train LoRA / Extract and Save LoRA nodes write.

Keys: ``diffusion_model.<LDM module>`` + ``.lora_up.weight`` / ``.lora_down.weight`` (core's writers) or
``.lora_A.weight`` / ``.lora_B.weight`` (which core's loader reads as well), and a scalar ``.alpha``; e.g.
``diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.lora_up.weight``. ComfyUI patches
``W += strength * alpha / rank * up @ down`` (no alpha: scale 1), the scaling we use, so weights and alphas are kept.
LDM names become the model's diffusers names through sd15_original, which needs the model's module names.

Core's Train LoRA node also trains every bias and norm weight as a full patch (``.diff_b``, 1-D ``.diff``); the pack
adapts weights through LoRA factors only, so those are left out and reported (``extra.skipped_components``), as are
text-encoder parts (``text_encoders.``, ``lora_te_``). Full-weight ``.diff`` patches of matrices, DoRA scales and
LoCon mid weights change what the factors mean, so they are errors naming the keys, as are keys naming no module.
"""

from __future__ import annotations

import re
from collections import Counter

import torch

from ...errors import InvalidInputError, LoraMismatchError
from ..metadata import decode_header
from ..motion_lora import MotionLora
from ..state import canonical_key
from .sd15_original import original_names

PREFIX = "diffusion_model."
_LDM_HEADS = re.compile(r"^diffusion_model\.(?:input_blocks|middle_block|output_blocks|time_embed|out)\.\d+\.")
_KEY = re.compile(r"^diffusion_model\.(?P<m>.+?)\.(?:lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight"
                  r"|(?P<du>lora_down|lora_up)\.weight|(?P<alpha>alpha))$")
_PATCH = re.compile(r"^diffusion_model\..+\.(?:diff|diff_b)$")
_TEXT_ENCODER = ("text_encoders.", "text_encoder.", "lora_te")
BIAS_AND_NORM_PATCHES = "bias and norm patches (.diff_b / .diff)"


def looks_like(keys) -> bool:
    return any(_LDM_HEADS.match(k) for k in keys)


def _sample(keys) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:3]) + (f" (and {len(keys) - 3} more)" if len(keys) > 3 else "")


def from_comfy_sd_file(tensors: dict[str, torch.Tensor], header: dict[str, str] | None,
                       module_names) -> MotionLora:
    """ComfyUI's SD1.5 layout -> MotionLora in canonical (diffusers) keys of the model named by ``module_names``."""
    if module_names is None:
        raise InvalidInputError(
            "This LoRA names the UNet's modules as the original Stable Diffusion code does, so reading it needs the "
            "model: pass the denoiser's module names (load the base model first)."
        )
    modules = original_names(module_names)
    weights: dict[str, torch.Tensor] = {}
    alphas: dict[str, float] = {}
    skipped: set[str] = set()
    unusable, unknown, unmatched = [], [], []
    for key, tensor in tensors.items():
        if key.startswith(_TEXT_ENCODER):
            skipped.add("text_encoder")
            continue
        if _PATCH.match(key):
            if tensor.ndim < 2:
                skipped.add(BIAS_AND_NORM_PATCHES)
            else:
                unusable.append(key)
            continue
        match = _KEY.match(key)
        if match is None:
            (unusable if key.startswith(PREFIX) else unknown).append(key)
            continue
        module = modules.get(match["m"])
        if module is None:
            unmatched.append(key)
        elif match["alpha"]:
            alphas[module] = float(tensor.float().reshape(-1)[0])
        else:
            role = match["ab"] or ("A" if match["du"] == "lora_down" else "B")
            weights[canonical_key(module, role)] = tensor
    if unusable:
        raise InvalidInputError(
            f"{len(unusable)} keys of this LoRA are full-weight, DoRA or LoCon patches the pack cannot apply: "
            f"{_sample(unusable)}. Use the file with ComfyUI's LoraLoaderModelOnly, or a plain LoRA "
            "(lora_up/lora_down)."
        )
    if unknown:
        raise InvalidInputError(
            f"{len(unknown)} keys of this LoRA are not in ComfyUI's layout (diffusion_model.<module>.lora_up.weight): "
            f"{_sample(unknown)}."
        )
    if unmatched:
        raise LoraMismatchError(
            f"{len(unmatched)} keys of this LoRA name UNet modules the loaded model does not have: "
            f"{_sample(unmatched)}. It was made for another model (e.g. SDXL); load a LoRA made for SD1.5."
        )
    if not weights:
        raise InvalidInputError("This LoRA file holds no LoRA weights for the UNet"
                                + (f" (only {', '.join(sorted(skipped))})." if skipped else "."))
    ranks = {k[len("unet."):-len(".lora_A.weight")]: int(t.shape[0])
             for k, t in weights.items() if k.endswith(".lora_A.weight")}
    per_module = {m: alphas.get(m, float(r)) for m, r in ranks.items()}
    meta = dict(decode_header(header) or {})
    meta.setdefault("kind", "appearance")
    meta["family"] = meta.get("family") or "animatediff"
    meta["rank"] = meta.get("rank") or Counter(ranks.values()).most_common(1)[0][0]
    # The .alpha tensors are what ComfyUI applies, so they win over a header that may disagree.
    meta["alpha"] = Counter(per_module.values()).most_common(1)[0][0]
    meta["alpha_pattern"] = per_module
    meta["source_format"] = "comfyui"
    if skipped:
        meta["extra"] = {**meta.get("extra", {}), "skipped_components": sorted(skipped)}
    return MotionLora(weights, meta)
