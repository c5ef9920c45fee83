"""Wan LoRAs in the original Wan module names: ComfyUI's native layout (written), and the spellings in circulation.

Written (format "comfyui"): ``diffusion_model.<original module>.lora_A.weight`` / ``.lora_B.weight`` and a scalar
``.alpha``, e.g. ``diffusion_model.blocks.0.self_attn.q.lora_A.weight`` for diffusers' ``blocks.0.attn1.to_q``.
A DeT temporal kernel is not written (core has no place for it); the header's ``extra.temporal_kernel_left_out``
says so, and the pack's report (report.py) tells whoever loads the file.
Why this spelling: ComfyUI's ``model_lora_keys_unet`` maps ``diffusion_model.<name>`` to every weight of the loaded
Wan, its LoRA adapter reads ``<name>.lora_B.weight`` / ``<name>.lora_A.weight`` and ``<name>.alpha`` (``.item()``),
and patches ``W += strength * alpha / rank * B @ A`` with rank = lora_A's first dimension: the same scaling as ours,
so weights and alphas are written unchanged and every key is loaded.

Read, into canonical keys (alpha kept per module; a module without one gets alpha = rank, i.e. scale 1, which is
what ComfyUI applies to such a file):
- ComfyUI's own and ai-toolkit's: ``diffusion_model.`` (or ``model.diffusion_model.``, or no prefix) + original
  module + ``lora_A/lora_B[.<adapter>].weight`` or ``lora_down/lora_up.weight``, ``.alpha``;
- musubi-tuner's: ``lora_unet_blocks_0_self_attn_q.lora_down.weight`` (Wan-Fun: ``lora_unet__blocks_...``), ``.alpha``.
diffusers/PEFT spellings (``transformer.blocks.0.attn1.to_q.lora_A.weight``) are diffusers names, read by canonical.py.
- ComfyUI's Train LoRA node (comfy_extras/nodes_train.py, saved as-is by Save LoRA Weights):
  ``diffusion_model.<module>`` + ``lora_up.weight`` / ``lora_down.weight`` / ``alpha`` for every weight of 2+ dims (a conv's ``lora_down`` is
  flattened to [rank, in * kernel], which the merge reads like peft's conv factors), ``.diff`` for every 1-D weight
  (norms) and ``.diff_b`` for every bias. The ``.diff`` / ``.diff_b`` tensors are kept as the LoRA's weight patches
  (motion_lora.py), which core adds as ``strength * diff``; full-weight ``.diff`` of matrices are carried the same way.
Text-encoder parts are skipped and recorded in ``extra.skipped_components``; parts that change what the factors mean
(DoRA scales, LoCon mid weights, reshapes, set_weight, w_norm / b_norm) and keys that match nothing are errors
naming them.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter

import torch

from ...backbones.wan.keys import diffusers_module_to_original, original_key_to_diffusers, strip_original_prefix
from ...errors import InvalidInputError, LoraMismatchError
from ..metadata import decode_header, encode_header
from ..motion_lora import MotionLora
from ..state import canonical_key, patch_key

PREFIX = "diffusion_model."
KERNEL_LEFT_OUT = "temporal_kernel_left_out"
KERNEL_NOTE = ("This file holds the LoRA part only: the LoRA was trained with a DeT temporal kernel, which ComfyUI "
               "core's LoraLoaderModelOnly cannot apply. For the whole LoRA load the pack's canonical file with Load "
               "Motion LoRA and use Sample Video or Apply Motion LoRA (native MODEL).")
_NAMED = re.compile(
    r"^(?P<m>.+?)\.(?:lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight|(?P<du>lora_down|lora_up)\.weight|(?P<alpha>alpha))$")
_MUSUBI = re.compile(r"^lora_unet__?(?P<flat>[A-Za-z0-9_]+)\.(?:(?P<du>lora_down|lora_up)\.weight|(?P<alpha>alpha))$")
_PATCH = re.compile(r"^(?P<m>.+)\.(?P<p>diff|diff_b)$")
_UNUSABLE = re.compile(r"\.(dora_scale|lora_mid\.weight|reshape_weight|set_weight|w_norm|b_norm)$")
_TEXT_ENCODER = ("text_encoders.", "text_encoder.", "text_encoder_2.", "lora_te")
_MAX_UNDERSCORES = 8  # the longest flattened Wan name (blocks_N_cross_attn_norm_k_img) has 6
# first words of Wan's top-level modules: other kohya names (SD's down_blocks_0_...) skip the search
_WAN_HEADS = ("blocks_", "text_embedding_", "time_embedding_", "time_projection_", "head_", "patch_embedding",
              "img_emb_")


def wan_module(original: str) -> str | None:
    """An original Wan module name (any ComfyUI prefix) -> its diffusers name, None when Wan has no such module."""
    renamed = original_key_to_diffusers(f"{strip_original_prefix(original)}.weight")
    return None if renamed is None else renamed[: -len(".weight")]


def unflatten(flat: str) -> str | None:
    """``blocks_0_self_attn_q`` -> ``blocks.0.self_attn.q``: the one way of turning underscores into dots that names
    a Wan module. Tried exhaustively (a name has at most a handful of underscores) rather than with a second table, so
    it can never disagree with backbones/wan/keys.py."""
    parts = flat.split("_")
    if not flat.startswith(_WAN_HEADS) or len(parts) - 1 > _MAX_UNDERSCORES:
        return None
    found = set()
    for joints in itertools.product("._", repeat=len(parts) - 1):
        name = parts[0] + "".join(j + p for j, p in zip(joints, parts[1:]))
        if wan_module(name) is not None:
            found.add(name)
    return found.pop() if len(found) == 1 else None


def _parse(key: str) -> tuple[str, str, str] | None:
    """(diffusers module, role "A"|"B"|"alpha", spelling "comfyui"|"musubi") of a Wan LoRA key, else None."""
    match = _MUSUBI.match(key)
    if match:
        original = unflatten(match["flat"])
        spelling = "musubi"
    else:
        match = _NAMED.match(key)
        original = match["m"] if match else None
        spelling = "comfyui"
    module = wan_module(original) if original else None
    if module is None:
        return None
    if match["alpha"]:
        role = "alpha"
    elif match["du"]:
        role = "A" if match["du"] == "lora_down" else "B"
    else:
        role = match["ab"]
    return module, role, spelling


def looks_like(keys) -> bool:
    return any(_parse(k) is not None for k in keys)


def to_comfy_wan_file(lora: MotionLora) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The LoRA in ComfyUI's native Wan layout (what LoraLoaderModelOnly reads), our metadata in the header."""
    if lora.family and lora.family != "wan":
        raise InvalidInputError(
            f"The comfyui format is ComfyUI's native layout for Wan LoRAs; this LoRA is for {lora.family} models, "
            "whose modules have no place in it. Save it as canonical (or animatediff / kohya)."
        )
    tensors: dict[str, torch.Tensor] = {}
    for module in lora.modules():
        try:
            stem = PREFIX + diffusers_module_to_original(module)
        except LoraMismatchError as err:
            raise InvalidInputError(f"Cannot save in the comfyui format: {err}") from None
        a, b = lora.weights(module)
        tensors[f"{stem}.lora_A.weight"] = a
        tensors[f"{stem}.lora_B.weight"] = b
        tensors[f"{stem}.alpha"] = torch.tensor(lora.module_alpha(module), dtype=torch.float32)
    for module in lora.patched_modules():
        try:
            stem = PREFIX + diffusers_module_to_original(module)
        except LoraMismatchError as err:
            raise InvalidInputError(f"Cannot save in the comfyui format: {err}") from None
        for parameter, suffix in (("weight", "diff"), ("bias", "diff_b")):
            if lora.patch(module, parameter) is not None:
                tensors[f"{stem}.{suffix}"] = lora.patch(module, parameter)
    metadata = {**lora.metadata, "family": "wan", "source_format": "comfyui"}
    if lora.kernel:
        # Core's loader has no place for a module, so the file holds the LoRA part; its header says what is missing.
        metadata["extra"] = {**metadata.get("extra", {}), KERNEL_LEFT_OUT: {**lora.kernel_spec.to_dict(),
                                                                          "note": KERNEL_NOTE}}
        metadata["temporal_kernel"] = {}
    return tensors, encode_header(metadata)


def _sample(keys) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:3]) + (f" (and {len(keys) - 3} more)" if len(keys) > 3 else "")


def from_wan_file(tensors: dict[str, torch.Tensor], header: dict[str, str] | None = None) -> MotionLora:
    """Any Wan original-name layout -> MotionLora in canonical (diffusers) keys."""
    weights: dict[str, torch.Tensor] = {}
    patches: dict[str, torch.Tensor] = {}
    alphas: dict[str, float] = {}
    spellings: Counter = Counter()
    skipped, unusable, unknown = [], [], []
    for key, tensor in tensors.items():
        if key.startswith(_TEXT_ENCODER):
            skipped.append(key)
            continue
        patch = _PATCH.match(key)
        if patch:
            module = wan_module(patch["m"])
            if module is None:
                unknown.append(key)
            else:
                patches[patch_key(module, "weight" if patch["p"] == "diff" else "bias")] = tensor
            continue
        parsed = _parse(key)
        if parsed is None:
            (unusable if _UNUSABLE.search(key) else unknown).append(key)
            continue
        module, role, spelling = parsed
        spellings[spelling] += 1
        if role == "alpha":
            alphas[module] = float(tensor.float().reshape(-1)[0])
        else:
            weights[canonical_key(module, role)] = tensor
    if unusable:
        raise InvalidInputError(
            f"{len(unusable)} keys of this Wan LoRA are DoRA, LoCon or set-weight parts the pack cannot apply: "
            f"{_sample(unusable)}. Use the file with ComfyUI's LoraLoaderModelOnly, or a plain LoRA (lora_A/lora_B)."
        )
    if unknown:
        raise InvalidInputError(
            f"{len(unknown)} keys of this Wan LoRA match no Wan module: {_sample(unknown)}. Supported: ComfyUI / "
            "ai-toolkit (diffusion_model.blocks.N.self_attn.q.lora_A.weight), musubi-tuner "
            "(lora_unet_blocks_N_self_attn_q.lora_down.weight) and diffusers/PEFT (transformer.blocks.N.attn1.to_q...)."
        )
    if not weights:
        raise InvalidInputError("This Wan LoRA file holds no weights for the diffusion model"
                                + (" (only a text-encoder part)." if skipped else "."))
    ranks = {k[len("unet."):-len(".lora_A.weight")]: int(t.shape[0])
             for k, t in weights.items() if k.endswith(".lora_A.weight")}
    per_module = {m: alphas.get(m, float(r)) for m, r in ranks.items()}
    meta = dict(decode_header(header) or {})
    meta["family"] = meta.get("family") or "wan"
    meta["rank"] = meta.get("rank") or Counter(ranks.values()).most_common(1)[0][0]
    # The .alpha tensors are what ComfyUI applies, so they win over a header that may disagree.
    meta["alpha"] = Counter(per_module.values()).most_common(1)[0][0]
    meta["alpha_pattern"] = per_module
    meta["source_format"] = spellings.most_common(1)[0][0]
    if skipped:
        meta["extra"] = {**meta.get("extra", {}), "skipped_components": ["text_encoder"]}
    return MotionLora(weights, meta, patches)
