"""Reading weight files safely, for every family: regular files only, a .safetensors header checked against the
file's size, pickles only through ``torch.load(weights_only=True)``, and NaN/inf refused tensor by tensor.

These checks sit below every model family (a family's loader calls them; none of them knows a family), so a new
family gets the same guarantees by calling ``read_state_dict`` / ``safetensors_header`` on its files.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import stat
import struct
from pathlib import Path

import torch

from ..errors import ModelLoadError

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 << 20
"""A safetensors header is a JSON table of tensor names, shapes and offsets: ~130 kB for a 14B Wan model with ~1,100
tensors. A bigger claim is refused before it is read, so a crafted file cannot make the server parse gigabytes."""


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


_FINITE_CHUNK = 1 << 24  # elements per check of a float type without a reduction kernel (widened chunk by chunk)
_FP8_NOT_FINITE = {torch.float8_e4m3fn: 0x7F, torch.float8_e5m2: 0x7C}
"""Lowest 7-bit magnitude pattern that is NaN (e4m3fn: only S1111111, it has no inf) or inf/NaN (e5m2: S11111xx)."""


def all_finite(tensor: torch.Tensor) -> bool:
    """Whether a tensor holds no NaN/inf, without a temporary of the tensor's size: the smallest and largest values
    (torch's min/max propagate NaN) must both be finite. fp8 (no min/max or isfinite kernels) is read as bytes: its
    non-finite patterns are the largest magnitudes of each sign, so the maximum of the bytes as int8 (positive values)
    and as uint8 (negative ones) tells.

    Why not isfinite(...).all(): it writes a mask per check. Loading a Wan 1.3B fp8 file here, widening fp8 to
    float16 for it took 15 of the 16 s, and its masks, freed between the small tensors kept, left the heap holding
    freed pages of 20% of the file's size (glibc cannot give back a hole below a live allocation)."""
    if not tensor.is_floating_point() or tensor.numel() == 0:
        return True
    flat = tensor.detach().reshape(-1)
    if flat.dtype in _FP8_NOT_FINITE:
        lowest = _FP8_NOT_FINITE[flat.dtype]
        return int(flat.view(torch.int8).max()) < lowest and int(flat.view(torch.uint8).max()) < 0x80 | lowest
    narrow = flat.element_size() == 1  # another 1-byte float: widened chunk by chunk (every one fits float16)
    for start in range(0, flat.numel(), _FINITE_CHUNK):
        chunk = flat[start:start + _FINITE_CHUNK]
        low, high = torch.aminmax(chunk.to(torch.float16) if narrow else chunk)
        if not bool(torch.isfinite(low) & torch.isfinite(high)):
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


def shape_mismatch(module: torch.nn.Module, state: dict) -> str | None:
    """The first weight of ``state`` whose shape differs from ``module``'s, in words, or None. Checked before
    load_state_dict, whose own message lists every mismatch in library terms."""
    expected = {name: tuple(t.shape) for name, t in [*module.named_parameters(), *module.named_buffers()]}
    for key, tensor in state.items():
        if key in expected and tuple(tensor.shape) != expected[key]:
            return (f"weight {key!r} is {list(tensor.shape)} in the motion module but {list(expected[key])} in the "
                    "model it joins (their layer widths differ)")
    return None



def safetensors_header(path: Path, complete: bool = True) -> dict:
    """The header of a .safetensors file and, if ``complete``, a check against the file's size, so that a cut-off
    download is named as such instead of surfacing as a library error half-way through loading. Only a regular file
    is opened (a FIFO would block), and the header length is checked before it is read (a hostile file can claim
    exabytes)."""
    path = Path(path)
    require_regular_file(path, "a .safetensors weights file")
    damaged = f"{path.name} is not a complete .safetensors file"
    invalid = f"{path.name} is not a valid .safetensors file"
    fix = "re-download it (the download was probably cut off)"
    try:
        size = path.stat().st_size
        if size < 8:
            raise ModelLoadError(f"{invalid}: it holds {size} bytes, too few for a header; {fix}.")
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > size - 8:
                raise ModelLoadError(f"{invalid} (its header claims {length:,} bytes but the file holds {size:,}): "
                                     "it was cut off, or is another kind of file renamed; re-download it.")
            if length > MAX_HEADER_BYTES:
                raise ModelLoadError(f"{invalid}: its header claims {length:,} bytes, far more than any model's "
                                     f"table of tensors needs (at most {MAX_HEADER_BYTES:,} here); the file is "
                                     "damaged or crafted. Re-download it from its publisher.")
            header = json.loads(handle.read(length))
    except OSError as error:
        log.warning("reading the header of %s failed: %s", path, error)
        raise ModelLoadError(f"{path.name} could not be read ({error.strerror or 'I/O error'}); check the file's "
                             "permissions and the disk, or re-download it.") from error
    except (struct.error, ValueError, UnicodeDecodeError, RecursionError) as error:  # RecursionError: nested [[[
        raise ModelLoadError(f"{invalid} (its header is not readable): it is damaged, or another kind of file "
                             "renamed; re-download it.") from error
    if not isinstance(header, dict):
        raise ModelLoadError(f"{invalid} (its header is not a table of tensors); re-download it.")
    header.pop("__metadata__", None)
    try:
        end = max((int(entry["data_offsets"][1]) for entry in header.values()), default=0)
    except (TypeError, KeyError, IndexError, ValueError) as error:
        raise ModelLoadError(f"{invalid} (its tensor table is damaged); re-download it.") from error
    if complete and 8 + length + end > size:
        raise ModelLoadError(f"{damaged}: it holds {size:,} bytes but its tensors need {8 + length + end:,}; {fix}.")
    return header


def load_weights_into(model: torch.nn.Module, weights: dict, name: str, what: str) -> torch.nn.Module:
    """Assign ``weights`` to a model built on the meta device (no random init of billions of parameters): a
    missing or unexpected key, or a shape that differs, is a ModelLoadError naming the file."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    if missing or unexpected:
        detail = (f"missing {missing[:5]}" if missing else "") + ("; " if missing and unexpected else "") + \
                 (f"unexpected {unexpected[:5]}" if unexpected else "")
        cut = " (a truncated or partly converted file?)" if missing else ""
        raise ModelLoadError(f"{name} does not match the {what} it was detected as{cut}: {detail}. Re-download the "
                             "file, or pick the one that matches this model.")
    wrong = [f"{k}: file {tuple(weights[k].shape)}, model {tuple(v.shape)}" for k, v in expected.items()
             if tuple(weights[k].shape) != tuple(v.shape)]
    if wrong:
        raise ModelLoadError(f"{name} does not fit the {what} it was detected as; shapes differ: {wrong[:3]}.")
    model.load_state_dict(weights, strict=True, assign=True)
    return model
