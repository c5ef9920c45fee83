"""AnimateDiff motion modules from disk: original checkpoints (mm_sd_v15*.ckpt, v3_sd15_mm.ckpt), diffusers-layout
single files, or diffusers MotionAdapter folders, and their joining with an SD1.5 UNet into a UNetMotionModel.

The adapter's architecture is read off the checkpoint itself (motion layers per block, frame-table length, presence
of a mid-block module) and the UNet it joins (channel widths), so v1 (24 frames), v2 (mid block) and v3 load without
hub lookups; the results equal the shipped configs/animatediff_motion_adapter_v*/config.json for SD1.5.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import torch

from ...errors import ModelLoadError
from ..base import move
from ..files import read_state_dict, shape_mismatch
from ..folders import LIBRARY_LOAD_ERRORS, pickle_refused

log = logging.getLogger(__name__)
CONFIGS_DIR = Path(__file__).resolve().parent / "configs"
"""Shipped configs (SD1.5 parts, the AnimateDiff schedule, MotionAdapter v1-v3): diffusers would fetch them online."""
_ORIGINAL_MARK = ".temporal_transformer."
_RENAMES = ((".norms.0", ".norm1"), (".norms.1", ".norm2"), (".ff_norm", ".norm3"),
            (".attention_blocks.0", ".attn1"), (".attention_blocks.1", ".attn2"))


def load_motion_adapter(source, unet_config, dtype: torch.dtype = torch.float32):
    """A diffusers MotionAdapter from a motion module file or a MotionAdapter folder, sized for ``unet_config``."""
    from diffusers import MotionAdapter

    source = Path(source)
    if source.is_dir():
        if not (source / "config.json").is_file():
            raise ModelLoadError(f"{source} has no config.json: expected a diffusers MotionAdapter folder or a "
                                 "motion module file (v3_sd15_mm.ckpt, mm_sd_v15_v2.ckpt).")
        try:
            adapter = MotionAdapter.from_pretrained(source, torch_dtype=dtype, local_files_only=True)
        except LIBRARY_LOAD_ERRORS as error:
            # The library's words go to the log; the user reads which folder, what is wrong and what to do.
            log.warning("MotionAdapter.from_pretrained(%s) failed: %s", source, error)
            if isinstance(error, pickle.UnpicklingError):
                raise pickle_refused(source) from error
            raise ModelLoadError(
                f"{source} could not be loaded as a diffusers MotionAdapter folder: its config.json is not a "
                "MotionAdapter's, or its weights are missing, damaged or do not match that config. Re-download the "
                "folder, or choose a motion module file (v3_sd15_mm.ckpt, mm_sd_v15_v2.ckpt) from "
                "models/animatediff_models instead (ComfyUI's log has the loader's own message)."
            ) from error
        restore_position_tables(adapter)  # diffusers' conversions of original checkpoints drop these fixed tables
        # diffusers leaves weights the folder lacks unset (on the meta device) and only logs it.
        missing = [n for n, t in [*adapter.named_parameters(), *adapter.named_buffers()] if t.is_meta]
        if missing:
            raise ModelLoadError(
                f"{source} does not hold the motion module its config.json describes: {len(missing)} weights are "
                f"missing (e.g. {missing[:3]}), so config.json and the weights belong to different motion modules or "
                "the download is incomplete. Re-download the folder, or choose a motion module file from "
                "models/animatediff_models."
            )
        return adapter
    state = to_diffusers_layout(read_state_dict(source), source.name)
    config = derive_motion_adapter_config(state, unet_config)
    mismatch = None
    try:
        with torch.device("meta"):
            adapter = MotionAdapter(**config)
        mismatch = shape_mismatch(adapter, state)
        if mismatch:
            raise ValueError(mismatch)
        result = adapter.load_state_dict(state, strict=False, assign=True)
    except (RuntimeError, ValueError) as error:
        log.warning("building the motion adapter of %s failed: %s", source, error)
        raise ModelLoadError(
            f"{source.name} does not fit this model{f': {mismatch}' if mismatch else ''}. SD1.5 models need an SD1.5 "
            "motion module (mm_sd_v14/v15, mm_sd_v15_v2, v3_sd15_mm), not an SDXL or SD2 one; pick one of those "
            "from models/animatediff_models."
        ) from error
    adapter.register_to_config(_name_or_path=str(source))  # names the file if the UNet refuses it later
    if result.unexpected_keys:
        raise ModelLoadError(f"{source.name} has weights no motion module has: {result.unexpected_keys[:5]}.")
    restore_position_tables(adapter)
    missing = [n for n, t in [*adapter.named_parameters(), *adapter.named_buffers()] if t.is_meta]
    if missing:
        raise ModelLoadError(f"{source.name} is an incomplete motion module; missing weights such as {missing[:5]}.")
    return move(adapter, dtype=dtype)


def to_diffusers_layout(state: dict, name: str = "the file") -> dict:
    """Motion-module weights keyed as diffusers' MotionAdapter expects, from either layout."""
    keys = list(state)
    if not any(".motion_modules." in k for k in keys):
        hint = (" It looks like a LoRA: load it with the LoRA loader." if any("lora" in k.lower() for k in keys)
                else " Choose an AnimateDiff motion module (v3_sd15_mm.ckpt, mm_sd_v15_v2.ckpt).")
        raise ModelLoadError(f"{name} is not an AnimateDiff motion module (no motion_modules weights).{hint}")
    if not any(_ORIGINAL_MARK in k for k in keys):
        return dict(state)
    converted = {}
    for key, tensor in state.items():
        if "pos_encoder" in key:
            # One frame-position table per attention block in the original; diffusers keeps one per transformer
            # block, and the values are the same fixed sinusoid.
            if ".attention_blocks.0.pos_encoder.pe" in key:
                converted[key.replace(_ORIGINAL_MARK, ".").replace(".attention_blocks.0.pos_encoder.pe",
                                                                   ".pos_embed.pe")] = tensor
            continue
        new = key.replace(_ORIGINAL_MARK, ".")
        for old, replacement in _RENAMES:
            new = new.replace(old, replacement)
        converted[new] = tensor
    return converted


def to_original_layout(state: dict) -> dict:
    """The inverse of to_diffusers_layout: diffusers MotionAdapter keys -> original AnimateDiff keys."""
    original = {}
    for key, tensor in state.items():
        head, sep, tail = key.partition(".motion_modules.")
        index, _, rest = tail.partition(".")
        if "pos_embed.pe" in rest:
            for block in (0, 1):
                new_rest = rest.replace("pos_embed.pe", f"attention_blocks.{block}.pos_encoder.pe")
                original[f"{head}{sep}{index}.temporal_transformer.{new_rest}"] = tensor
            continue
        for replacement, old in reversed(_RENAMES):
            rest = rest.replace(old[1:], replacement[1:])
        original[f"{head}{sep}{index}.temporal_transformer.{rest}"] = tensor
    return original


def derive_motion_adapter_config(state: dict, unet_config) -> dict:
    """MotionAdapter config from diffusers-layout motion weights and the UNet they join."""
    def indices(prefix: str, depth: int) -> set[int]:
        return {int(k.split(".")[depth]) for k in state if k.startswith(prefix)}

    layers = indices("down_blocks.0.motion_modules.", 3)
    transformer_layers = indices("down_blocks.0.motion_modules.0.transformer_blocks.", 5)
    tables = [v for k, v in state.items() if k.endswith("pos_embed.pe")]
    conv_in = state.get("conv_in.weight")
    if not layers or not transformer_layers:
        raise ModelLoadError("The motion module has no modules in its first down block; it is truncated or not an "
                             "AnimateDiff motion module.")
    return {
        "block_out_channels": list(unet_config["block_out_channels"]),
        "motion_layers_per_block": len(layers),
        "motion_transformer_layers_per_block": len(transformer_layers),
        "motion_mid_block_layers_per_block": 1,
        "motion_transformer_layers_per_mid_block": 1,
        "motion_num_attention_heads": 8,  # every released SD1.5 module; head count is not visible in the weights
        "motion_norm_num_groups": 32,
        "motion_max_seq_length": int(tables[0].shape[1]) if tables else 32,
        "use_motion_mid_block": any(k.startswith("mid_block.motion_modules.") for k in state),
        "conv_in_channels": int(conv_in.shape[1]) if conv_in is not None else None,
    }


def restore_position_tables(module: torch.nn.Module) -> None:
    """Recompute diffusers' SinusoidalPositionalEmbedding tables left on the meta device (they are fixed functions
    of their shape, and original AnimateDiff checkpoints converted by diffusers drop them)."""
    from diffusers.models.embeddings import SinusoidalPositionalEmbedding

    for sub in module.modules():
        if isinstance(sub, SinusoidalPositionalEmbedding) and sub.pe.is_meta:
            _, length, dim = sub.pe.shape
            sub.pe = SinusoidalPositionalEmbedding(dim, length).pe


def combine_unet_and_motion_adapter(unet2d, adapter):
    """UNetMotionModel from an SD1.5 UNet and a MotionAdapter without a random-init pass over ~1.3B parameters:
    the architecture is built on the meta device, then both state dicts (whose keys UNetMotionModel shares
    verbatim) are assigned; the sinusoidal frame-position tables, when absent from the adapter, are recomputed."""
    from diffusers import UNetMotionModel

    source = adapter.config.get("_name_or_path")
    name = Path(str(source)).name if source else "The motion module"
    fix = ("Pick a motion module made for this model: SD1.5 models take mm_sd_v14/v15, mm_sd_v15_v2 or v3_sd15_mm "
           "(models/animatediff_models), not an SDXL (mm_sdxl, HotShot-XL) or SD2 one.")
    try:
        with torch.device("meta"):
            unet = UNetMotionModel.from_unet2d(unet2d, adapter, load_weights=False)
    except ValueError as error:
        log.warning("UNetMotionModel.from_unet2d refused %s: %s", name, error)
        unet_blocks, adapter_blocks = len(unet2d.config.down_block_types), len(adapter.config.block_out_channels)
        raise ModelLoadError(
            f"{name} does not fit this UNet: it has {adapter_blocks} blocks of "
            f"{adapter.config.motion_layers_per_block} motion layers, the UNet {unet_blocks} blocks of "
            f"{unet2d.config.layers_per_block} layers. {fix}"
        ) from error
    weights = {**unet2d.state_dict(), **{k: v for k, v in adapter.state_dict().items() if not k.startswith("conv_in")}}
    mismatch = shape_mismatch(unet, weights)
    if mismatch:
        raise ModelLoadError(f"{name} does not fit this UNet: {mismatch}. {fix}")
    result = unet.load_state_dict(weights, strict=False, assign=True)
    if result.unexpected_keys:
        raise ModelLoadError(
            f"{name} does not fit this UNet: it has weights the UNet has no place for, such as "
            f"{result.unexpected_keys[:5]}. {fix}"
        )
    restore_position_tables(unet)
    missing = [n for n, t in [*unet.named_parameters(), *unet.named_buffers()] if t.is_meta]
    if missing:
        raise ModelLoadError(f"The UNet or {name} is incomplete; missing weights such as {missing[:5]}. Re-download "
                             "the model and the motion module.")
    return move(unet, dtype=next(unet2d.parameters()).dtype)

