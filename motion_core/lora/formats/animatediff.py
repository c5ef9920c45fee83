"""The original AnimateDiff motion-LoRA layout, read by AnimateDiff-Evolved's "Load AnimateDiff LoRA".

Key example (diffusers module ``down_blocks.0.motion_modules.0.transformer_blocks.0.attn1.to_q``):
``down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.processor.to_q_lora
.down.weight`` and ``...to_q_lora.up.weight``. The loader keeps keys containing "temporal", drops "processor.",
"_lora", "down."/"up." to find the motion-module weight (``to_out`` gains ".0."), and patches it with
strength * up @ down. There is no alpha, so exports bake alpha/rank into ``up`` and imports use alpha = rank.

diffusers renamed the motion module on conversion: ``attention_blocks.0/1`` -> ``attn1/attn2`` and dropped
``.temporal_transformer``; the maps below undo exactly that.
"""

from __future__ import annotations

import re

import torch

from ...errors import InvalidInputError
from ..metadata import encode_header
from ..motion_lora import MotionLora
from ..state import canonical_key

_BLOCK = r"(?P<block>(?:down_blocks|up_blocks)\.\d+|mid_block)\.motion_modules\.(?P<mm>\d+)"
_DIFFUSERS = re.compile(
    rf"^{_BLOCK}\.(?:transformer_blocks\.(?P<tb>\d+)\.(?:attn(?P<attn>[12])\.(?P<proj>to_q|to_k|to_v|to_out\.0)"
    r"|(?P<ff>ff\.net\.0\.proj|ff\.net\.2))|(?P<io>proj_in|proj_out))$"
)
_ORIGINAL = re.compile(
    rf"^{_BLOCK}\.temporal_transformer\.(?:transformer_blocks\.(?P<tb>\d+)\.(?:attention_blocks\.(?P<ab>\d+)\."
    r"processor\.(?P<proj>to_q|to_k|to_v|to_out)|(?P<ff>ff\.net\.0\.proj|ff\.net\.2))|(?P<io>proj_in|proj_out))"
    r"_lora\.(?P<w>down|up)\.weight$"
)


def looks_like(keys) -> bool:
    return any(_ORIGINAL.match(k) for k in keys)


def original_stem(module: str) -> str:
    """diffusers motion-module name -> original key without ``.down.weight`` / ``.up.weight``."""
    m = _DIFFUSERS.match(module)
    if not m:
        raise InvalidInputError(
            f"{module} has no place in the AnimateDiff motion-LoRA layout (only motion-module attention, "
            "feed-forward and proj_in/out do); export this LoRA in canonical format instead."
        )
    head = f"{m['block']}.motion_modules.{m['mm']}.temporal_transformer"
    if m["io"]:
        return f"{head}.{m['io']}_lora"
    if m["ff"]:
        return f"{head}.transformer_blocks.{m['tb']}.{m['ff']}_lora"
    proj = "to_out" if m["proj"] == "to_out.0" else m["proj"]
    return f"{head}.transformer_blocks.{m['tb']}.attention_blocks.{int(m['attn']) - 1}.processor.{proj}_lora"


def diffusers_module(key: str) -> tuple[str, str] | None:
    """Original key -> (diffusers module, "A"|"B"), None when the key is not in this layout."""
    m = _ORIGINAL.match(key)
    if not m or (m["ab"] is not None and int(m["ab"]) > 1):
        return None
    head = f"{m['block']}.motion_modules.{m['mm']}"
    if m["io"]:
        module = f"{head}.{m['io']}"
    elif m["ff"]:
        module = f"{head}.transformer_blocks.{m['tb']}.{m['ff']}"
    else:
        proj = "to_out.0" if m["proj"] == "to_out" else m["proj"]
        module = f"{head}.transformer_blocks.{m['tb']}.attn{int(m['ab']) + 1}.{proj}"
    return module, "A" if m["w"] == "down" else "B"


def to_animatediff_file(lora: MotionLora) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    tensors: dict[str, torch.Tensor] = {}
    ranks = {}
    for module in lora.modules():
        a, b = lora.weights(module)
        if a.ndim != 2:
            raise InvalidInputError(
                f"{module} is a convolution; the AnimateDiff LoRA layout holds only linear layers. Export in "
                "canonical format instead."
            )
        stem = original_stem(module)
        ranks[module] = float(a.shape[0])
        baked = (b.float() * (lora.module_alpha(module) / a.shape[0])).to(b.dtype)
        tensors[f"{stem}.down.weight"] = a
        tensors[f"{stem}.up.weight"] = baked
    header = encode_header({**lora.metadata, "alpha": float(lora.rank), "alpha_pattern": ranks,
                            "source_format": "animatediff",
                            "extra": {**lora.metadata.get("extra", {}), "alpha_baked": True}})
    return tensors, header


def from_animatediff_file(tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> MotionLora:
    """Alpha is baked into ``up`` in this layout, so every module gets alpha = its rank (scale 1)."""
    weights: dict[str, torch.Tensor] = {}
    unreadable = []
    for key, tensor in tensors.items():
        parsed = diffusers_module(key)
        if parsed is None:
            unreadable.append(key)
        else:
            weights[canonical_key(*parsed)] = tensor
    if unreadable:
        raise InvalidInputError(
            f"{len(unreadable)} keys of this AnimateDiff motion LoRA are not in its layout, e.g. "
            f"{', '.join(sorted(unreadable)[:3])}. Only motion-module LoRA weights can be read."
        )
    ranks = {k[len("unet."):-len(".lora_A.weight")]: float(t.shape[0])
             for k, t in weights.items() if k.endswith(".lora_A.weight")}
    meta = dict(metadata or {})
    meta.setdefault("kind", "motion")
    meta.setdefault("family", "animatediff")
    meta["rank"] = int(max(ranks.values(), default=0))
    meta["alpha"] = float(meta["rank"])
    meta["alpha_pattern"] = ranks
    meta["source_format"] = "animatediff"
    return MotionLora(weights, meta)
