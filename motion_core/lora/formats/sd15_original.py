"""Original Stable Diffusion (LDM) module names of an SD1.5-style UNet, for LoRAs written against them.

Kohya files made from single-file checkpoints (``lora_unet_input_blocks_1_1_...``) and ComfyUI's own SD1.5 LoRAs
(``diffusion_model.input_blocks.1.1...``) name the UNet as the original code built it; our models are diffusers'
UNet2DConditionModel / UNetMotionModel. The LDM UNet is one flat list per side, so a module's index depends on the
block structure: ``input_blocks`` = conv_in, then per down block ``layers`` entries of [resnet, attention?] and one
downsampler entry (not after the last block); ``middle_block`` = resnet, attention, resnet; ``output_blocks`` = per
up block ``layers`` entries of [resnet, attention?, upsampler?] (the upsampler rides on the block's last entry).
That structure is read from the model (its module names, or its config), never assumed to be real SD1.5's four
blocks of two, so the same rule names the tiny test UNet and the real one. Inside a block only resnets are renamed
(the table below, as in the original ResBlock); transformer internals keep their names. Motion modules have no LDM
name: AnimateDiff added them outside that layout. A UNet whose blocks hold other layers (ModelScope's temporal
convolutions and attentions) has an original layout of its own, so it gets no LDM names at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# diffusers ResnetBlock2D child -> original ResBlock child
RESNET_CHILDREN = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
                   "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
TOP_LEVEL = {"conv_in": "input_blocks.0.0", "time_embedding.linear_1": "time_embed.0",
             "time_embedding.linear_2": "time_embed.2", "conv_norm_out": "out.0", "conv_out": "out.2"}

_SIDE = re.compile(r"^(?P<side>down_blocks|up_blocks)\.(?P<block>\d+)\.(?P<part>resnets|attentions|downsamplers|"
                   r"upsamplers)\.(?P<index>\d+)(?:\.(?P<rest>.+))?$")
_CHILD = re.compile(r"^(?:down_blocks|up_blocks)\.\d+\.(?P<child>[^.]+)")
_SD_CHILDREN = {"resnets", "attentions", "downsamplers", "upsamplers", "motion_modules"}
_MID = re.compile(r"^mid_block\.(?P<part>resnets|attentions)\.(?P<index>\d+)(?:\.(?P<rest>.+))?$")


@dataclass(frozen=True)
class Stage:
    """One down or up block: how many resnets it has, whether each carries an attention, whether it resamples."""

    layers: int
    attention: bool
    resample: bool


@dataclass(frozen=True)
class UNetLayout:
    down: tuple[Stage, ...]
    up: tuple[Stage, ...]


def layout_from_config(config) -> UNetLayout:
    """From a UNet2DConditionModel / UNetMotionModel config: block types and layers_per_block (up blocks have one
    layer more, and every block but the last of each side resamples)."""
    get = config.get if isinstance(config, dict) else lambda k: getattr(config, k)
    down_types, up_types = list(get("down_block_types")), list(get("up_block_types"))
    per_block = get("layers_per_block")
    per_block = [per_block] * len(down_types) if isinstance(per_block, int) else list(per_block)
    down = tuple(Stage(n, "CrossAttn" in t, i < len(down_types) - 1)
                 for i, (n, t) in enumerate(zip(per_block, down_types)))
    up = tuple(Stage(n + 1, "CrossAttn" in t, i < len(up_types) - 1)
               for i, (n, t) in enumerate(zip(reversed(per_block), up_types)))
    return UNetLayout(down, up)


def layout_from_module_names(module_names) -> UNetLayout | None:
    """The same structure read off ``named_modules()`` names (what a LoRA reader is given); None for a model without
    SD-style blocks (no UNet, or one whose blocks hold layers the LDM layout has no place for)."""
    seen: dict[tuple[str, int], dict[str, set[int]]] = {}
    for name in module_names:
        child = _CHILD.match(name or "")
        if child and child["child"] not in _SD_CHILDREN:
            return None
        match = _SIDE.match(name or "")
        if match:
            parts = seen.setdefault((match["side"], int(match["block"])), {})
            parts.setdefault(match["part"], set()).add(int(match["index"]))

    def stages(side: str, resampler: str) -> tuple[Stage, ...]:
        count = 1 + max((b for s, b in seen if s == side), default=-1)
        return tuple(Stage(len(seen.get((side, b), {}).get("resnets", ())), "attentions" in seen.get((side, b), {}),
                           resampler in seen.get((side, b), {})) for b in range(count))

    if not seen:
        return None
    return UNetLayout(stages("down_blocks", "downsamplers"), stages("up_blocks", "upsamplers"))


def _inside(part: str, rest: str | None) -> str | None:
    """A block child's path below its LDM entry; None for children the original code does not have."""
    if rest is None:
        return ""
    if part == "resnets":
        head, _, tail = rest.partition(".")
        if head not in RESNET_CHILDREN:
            return None
        return "." + RESNET_CHILDREN[head] + (f".{tail}" if tail else "")
    if part in ("downsamplers", "upsamplers"):
        if rest != "conv":
            return None
        return ".op" if part == "downsamplers" else ".conv"
    return f".{rest}"


def original_name(module: str, layout: UNetLayout) -> str | None:
    """diffusers module name -> its LDM name in a UNet of ``layout``; None when it has none (motion modules)."""
    if module in TOP_LEVEL:
        return TOP_LEVEL[module]
    match = _MID.match(module)
    if match:
        inside = _inside(match["part"], match["rest"])
        entry = 2 * int(match["index"]) + (match["part"] == "attentions")
        return None if inside is None else f"middle_block.{entry}{inside}"
    match = _SIDE.match(module)
    if not match:
        return None
    stages = layout.down if match["side"] == "down_blocks" else layout.up
    block, index, part = int(match["block"]), int(match["index"]), match["part"]
    if block >= len(stages):
        return None
    inside = _inside(part, match["rest"])
    if inside is None:
        return None
    stage = stages[block]
    if match["side"] == "down_blocks":
        start = 1 + sum(s.layers + s.resample for s in stages[:block])
        if part == "downsamplers":
            return f"input_blocks.{start + stage.layers}.0{inside}"
        return f"input_blocks.{start + index}.{int(part == 'attentions')}{inside}"
    start = sum(s.layers for s in stages[:block])
    if part == "upsamplers":
        return f"output_blocks.{start + stage.layers - 1}.{1 + stage.attention}{inside}"
    return f"output_blocks.{start + index}.{int(part == 'attentions')}{inside}"


def original_names(module_names) -> dict[str, str]:
    """LDM name -> diffusers name for every module of the model that has one ({} for models without UNet blocks)."""
    module_names = [n for n in module_names if n]
    layout = layout_from_module_names(module_names)
    if layout is None:
        return {}
    table = {}
    for module in module_names:
        ldm = original_name(module, layout)
        if ldm is not None:
            table[ldm] = module
    return table
