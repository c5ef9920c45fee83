"""Our canonical file, and import of the other diffusers/PEFT spellings into it.

Written keys: ``unet.<module>.lora_A.weight`` / ``.lora_B.weight`` plus the header from metadata.py, and a DeT
temporal kernel's ``temporal_kernel.<site>.down.weight`` / ``.up.weight`` where the LoRA has one. Read keys
also include ``base_model.model.<module>...`` (peft's wrapped model), ``transformer.<module>...`` (diffusers' name
for a DiT's component, e.g. Wan LoRAs saved by diffusers or ai-toolkit), ``.lora_A.<adapter>.weight``, the older
diffusers ``.lora.down.weight`` / ``.lora.up.weight`` and ``.processor.to_q_lora.down.weight`` spellings, bare
module paths, and ``.alpha`` tensors (kohya-style alphas some converters leave in diffusers files).
Scales of foreign files: the peft config diffusers stores in the header (peft_config.py) when there is one, as
diffusers then uses nothing else; otherwise ``.alpha`` tensors, and alpha = rank (scale 1) for modules without one.
"""

from __future__ import annotations

import re
from collections import Counter

import torch

from ...errors import InvalidInputError
from ..metadata import decode_header, encode_header
from ..motion_lora import MotionLora
from ..state import canonical_key, patch_key
from ..temporal_kernel import split_kernel_key
from .peft_config import adapter_config, module_alphas

_OTHER_COMPONENTS = ("text_encoder.", "text_encoder_2.", "vae.")
_PREFIXES = ("base_model.model.", "unet.", "transformer.")
_WEIGHT_FORMS = [
    (re.compile(r"^(?P<m>.+)\.lora_(?P<w>[AB])(?:\.[^.]+)?\.weight$"), {"A": "A", "B": "B"}),
    (re.compile(r"^(?P<m>.+)\.lora\.(?P<w>down|up)\.weight$"), {"down": "A", "up": "B"}),
    (re.compile(r"^(?P<m>.+)\.processor\.(?P<p>to_q|to_k|to_v|to_out)_lora\.(?P<w>down|up)\.weight$"),
     {"down": "A", "up": "B"}),
]


def looks_like(keys) -> bool:
    return any(f.match(k) for k in keys for f, _ in _WEIGHT_FORMS)


def to_canonical_file(lora: MotionLora) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    return ({**lora.tensors, **lora.patches, **lora.kernel},
            encode_header({**lora.metadata, "source_format": "canonical"}))


def _module_and_role(key: str) -> tuple[str, str] | None:
    for form, roles in _WEIGHT_FORMS:
        match = form.match(key)
        if match:
            module = match.group("m")
            if "p" in match.groupdict():
                module = f"{module}.{'to_out.0' if match.group('p') == 'to_out' else match.group('p')}"
            return module, roles[match.group("w")]
    for role in ("alpha", "diff", "diff_b"):  # .diff / .diff_b: full-weight patches (ComfyUI's names, ours too)
        if key.endswith(f".{role}"):
            return key[: -len(role) - 1], role
    return None


def from_peft_file(tensors: dict[str, torch.Tensor], header: dict[str, str] | None) -> MotionLora:
    """Our own files (header kept) and foreign diffusers/PEFT files (scales from the header's peft config, else
    from .alpha keys, else alpha = rank)."""
    ours = decode_header(header)
    weights: dict[str, torch.Tensor] = {}
    patches: dict[str, torch.Tensor] = {}
    kernel: dict[str, torch.Tensor] = {}
    alphas: dict[str, float] = {}
    skipped, unknown = [], []
    prefixes: Counter = Counter()
    for key, tensor in tensors.items():
        if split_kernel_key(key) is not None:  # a DeT temporal kernel (ours; see temporal_kernel.py)
            kernel[key] = tensor
            continue
        if key.startswith(_OTHER_COMPONENTS):
            skipped.append(key)
            continue
        prefix = next((p for p in _PREFIXES if key.startswith(p)), "")
        prefixes[prefix] += 1
        bare = key[len(prefix):]
        parsed = _module_and_role(bare)
        if parsed is None:
            unknown.append(key)
        elif parsed[1] == "alpha":
            alphas[parsed[0]] = float(tensor.float().reshape(-1)[0])
        elif parsed[1] in ("diff", "diff_b"):
            patches[patch_key(parsed[0], "weight" if parsed[1] == "diff" else "bias")] = tensor
        else:
            weights[canonical_key(*parsed)] = tensor
    if unknown:
        raise InvalidInputError(
            f"{len(unknown)} keys in this LoRA file are not LoRA weights we can read, e.g. "
            f"{', '.join(sorted(unknown)[:3])}. Supported: diffusers/PEFT (lora_A/lora_B), kohya (lora_unet_*), "
            "original AnimateDiff motion LoRAs."
        )
    if not weights:
        raise InvalidInputError(
            "This LoRA file holds no denoiser (unet) weights"
            + (f"; only {skipped[0].split('.')[0]} weights." if skipped else ".")
        )
    if ours is not None:
        metadata = ours
    else:
        ranks = {k[len("unet."):-len(".lora_A.weight")]: int(t.shape[0])
                 for k, t in weights.items() if k.endswith(".lora_A.weight")}
        component = prefixes.most_common(1)[0][0][:-1] if prefixes else ""
        config = adapter_config(header, component if component in ("transformer", "unet") else None)
        if config is not None:
            per_module = module_alphas(config, ranks)
        else:
            per_module = {m: alphas.get(m, float(r)) for m, r in ranks.items()}
        alpha = Counter(per_module.values()).most_common(1)[0][0]
        metadata = {"alpha": alpha, "alpha_pattern": per_module, "rank": Counter(ranks.values()).most_common(1)[0][0],
                    "source_format": "peft"}
    if skipped:
        metadata = {**metadata, "extra": {**metadata.get("extra", {}), "skipped_components": sorted(
            {k.split(".")[0] for k in skipped})}}
    return MotionLora(weights, metadata, patches, kernel)
