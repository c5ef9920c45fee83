"""AnimateDiff motion modules from disk: original checkpoints (mm_sd_v15*.ckpt, v3_sd15_mm.ckpt), diffusers-layout
single files, or diffusers MotionAdapter folders, plus the safe state-dict reader every single-file path uses.

The adapter's architecture is read off the checkpoint itself (motion layers per block, frame-table length, presence
of a mid-block module) and the UNet it joins (channel widths), so v1 (24 frames), v2 (mid block) and v3 load without
hub lookups; the results equal the shipped configs/animatediff_motion_adapter_v*/config.json for SD1.5.
"""

from __future__ import annotations

import logging
import os
import pickle
import stat
import struct
from pathlib import Path

import torch

from ..errors import ModelLoadError
from .base import move

log = logging.getLogger(__name__)
CONFIGS_DIR = Path(__file__).resolve().parent / "configs"
_ORIGINAL_MARK = ".temporal_transformer."
_RENAMES = ((".norms.0", ".norm1"), (".norms.1", ".norm2"), (".ff_norm", ".norm3"),
            (".attention_blocks.0", ".attn1"), (".attention_blocks.1", ".attn2"))


def read_state_dict(path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors file, or of a .ckpt/.pt/.pth through torch.load(weights_only=True) (never a full
    unpickle: a file that needs code to load is refused). A top-level "state_dict" entry is unwrapped.

    Only regular files are opened (a FIFO or device named like a checkpoint would block the read forever), a
    .safetensors header is checked against the file's size first (so a cut-off download is named as such), and each
    floating tensor is checked for NaN/inf as it is read: broken weights are refused here, naming file and tensor,
    instead of turning every sample black later. Library messages go to the log, not into the error.
    """
    path = Path(path)
    require_regular_file(path, "a .safetensors or .ckpt weights file")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        state = _read_safetensors(path)
    elif suffix in (".ckpt", ".pt", ".pth"):
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, struct.error,
                UnicodeDecodeError) as error:
            log.warning("torch.load(%s) failed: %s", path, error)
            raise ModelLoadError(
                f"{path.name} could not be read as plain tensors: it is truncated or corrupt, or it needs code to "
                "unpickle (such files are refused). Re-download it, or use the .safetensors version of this file."
            ) from error
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
    else:
        raise ModelLoadError(f"{path.name}: expected a .safetensors or .ckpt file.")
    if not isinstance(state, dict):
        raise ModelLoadError(f"{path.name} does not hold a dictionary of weights.")
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    for key, tensor in tensors.items():
        check_finite(tensor, path.name, key)
    return tensors


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError, safe_open

    from .wan_files import safetensors_header

    safetensors_header(path)
    state = {}
    try:
        with safe_open(str(path), framework="pt") as handle:
            for key in handle.keys():
                state[key] = handle.get_tensor(key)
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as error:
        log.warning("safetensors could not read %s: %s", path, error)
        raise ModelLoadError(f"{path.name} is not a valid .safetensors file (its header or tensor table is "
                             "damaged); re-download it.") from error
    return state


def require_regular_file(path: Path, what: str) -> None:
    """Refuse anything but a regular file (links to one are fine) before it is opened: opening a FIFO blocks until
    a writer appears, a device may never end, and a folder is not a weights file."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        raise ModelLoadError(f"{path} not found: expected {what} there.") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file (a pipe, socket or device)"
        raise ModelLoadError(f"{path.name} is {kind}: expected {what}. Pick a weights file from the models folder.")


_FINITE_CHUNK = 1 << 24  # elements per check: bounds the temporary mask to 16 MB whatever the tensor's size


def all_finite(tensor: torch.Tensor) -> bool:
    """Whether a tensor holds no NaN/inf, checked in chunks so a multi-GB tensor needs no full-size temporary;
    float8 (no isfinite kernel) is widened chunk by chunk (every float8 value fits float16)."""
    if not tensor.is_floating_point() or tensor.numel() == 0:
        return True
    flat = tensor.detach().reshape(-1)
    narrow = flat.element_size() == 1
    for start in range(0, flat.numel(), _FINITE_CHUNK):
        chunk = flat[start:start + _FINITE_CHUNK]
        if not bool(torch.isfinite(chunk.to(torch.float16) if narrow else chunk).all()):
            return False
    return True


def check_finite(tensor: torch.Tensor, file_name: str, key: str) -> None:
    """ModelLoadError naming the file and tensor if ``tensor`` holds NaN or infinite values."""
    if not all_finite(tensor):
        raise ModelLoadError(
            f"{file_name}: tensor {key!r} holds NaN or infinite values, so every video made with it would come out "
            "black or as noise. The file is damaged or was saved from a diverged model: re-download it, or pick "
            "another file."
        )


def load_motion_adapter(source, unet_config, dtype: torch.dtype = torch.float32):
    """A diffusers MotionAdapter from a motion module file or a MotionAdapter folder, sized for ``unet_config``."""
    from diffusers import MotionAdapter

    from .loading import restore_position_tables

    source = Path(source)
    if source.is_dir():
        if not (source / "config.json").is_file():
            raise ModelLoadError(f"{source} has no config.json: expected a diffusers MotionAdapter folder or a "
                                 "motion module file (v3_sd15_mm.ckpt, mm_sd_v15_v2.ckpt).")
        try:
            adapter = MotionAdapter.from_pretrained(source, torch_dtype=dtype, local_files_only=True)
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as error:
            # The library's words go to the log; the user reads which folder, what is wrong and what to do.
            log.warning("MotionAdapter.from_pretrained(%s) failed: %s", source, error)
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


def shape_mismatch(module: torch.nn.Module, state: dict) -> str | None:
    """The first weight of ``state`` whose shape differs from ``module``'s, in words, or None. Checked before
    load_state_dict, whose own message lists every mismatch in library terms."""
    expected = {name: tuple(t.shape) for name, t in [*module.named_parameters(), *module.named_buffers()]}
    for key, tensor in state.items():
        if key in expected and tuple(tensor.shape) != expected[key]:
            return (f"weight {key!r} is {list(tensor.shape)} in the motion module but {list(expected[key])} in the "
                    "model it joins (their layer widths differ)")
    return None


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
