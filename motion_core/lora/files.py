"""Reading and writing LoRA files: safetensors only on write, never unpickling on read, atomic saves.

A save goes to a temporary file in the target folder, is fsynced and then renamed over the target, so a crash or
a full disk never leaves a half-written LoRA where a user (or AnimateDiff-Evolved) would pick it up.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from ..errors import InvalidInputError, MotionCoreError
from .formats import animatediff, canonical, kohya
from .formats.detect import FORMATS, detect_format
from .metadata import decode_header
from .motion_lora import MotionLora

PICKLE_SUFFIXES = (".pt", ".ckpt", ".pth", ".bin")


class LoraFileError(MotionCoreError):
    """A LoRA file cannot be read or written (missing, corrupt, unsafe, disk full, folder not writable)."""


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` all-or-nothing; on failure the target is untouched and no temp file remains."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        raise LoraFileError(
            f"Could not write {path}: {err.strerror or err}. Free some disk space or choose a folder you can "
            "write to, then save again."
        ) from err
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def save_lora(lora: MotionLora, path: str | os.PathLike, format: str = "canonical") -> Path:
    """Write ``lora`` as safetensors in ``format`` ("canonical", "animatediff", "kohya"); returns the path."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise InvalidInputError(f"LoRAs are saved as .safetensors; got {path.name}. Use a name ending in .safetensors.")
    writers = {"canonical": canonical.to_canonical_file, "animatediff": animatediff.to_animatediff_file,
               "kohya": kohya.to_kohya_file}
    if format not in writers:
        raise InvalidInputError(f"Unknown LoRA format {format!r}; choose one of {', '.join(FORMATS)}.")
    tensors, header = writers[format](lora)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write(path, safetensors_bytes(tensors, metadata=header))
    return path


def _read_pickle_free(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise LoraFileError(
            f"Refused to load {path.name}: it contains pickled Python objects, which could run code. Convert it "
            "to .safetensors with a tool you trust, or get a .safetensors release."
        ) from err
    except (OSError, RuntimeError, EOFError) as err:
        raise LoraFileError(f"{path} is not a readable checkpoint ({err}); re-download or re-export it.") from err
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise LoraFileError(f"{path.name} holds a {type(obj).__name__}, not a dict of LoRA weights.")
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def read_tensor_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, header) from .safetensors, or from .pt/.ckpt/.pth/.bin through ``weights_only`` loading."""
    path = Path(path)
    if not path.is_file():
        raise LoraFileError(f"LoRA file not found: {path}. Put the file there or pick another one.")
    if path.suffix in PICKLE_SUFFIXES:
        return _read_pickle_free(path), {}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return {k: handle.get_tensor(k) for k in handle.keys()}, dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError) as err:
        raise LoraFileError(f"{path} is not a valid safetensors file ({err}); re-download or re-export it.") from err


def lora_from_tensors(tensors: dict[str, torch.Tensor], header: dict[str, str] | None = None,
                      module_names=None) -> MotionLora:
    """Any supported layout -> MotionLora in canonical keys. ``module_names`` is needed only for kohya files."""
    fmt = detect_format(tensors)
    if fmt == "kohya":
        return kohya.from_kohya_file(tensors, header, module_names, decode_header(header))
    if fmt == "animatediff":
        return animatediff.from_animatediff_file(tensors, decode_header(header))
    return canonical.from_peft_file(tensors, header)


def load_lora(path: str | os.PathLike, module_names=None, *, name: str | None = None) -> MotionLora:
    """Read a LoRA file of any supported layout. The name defaults to the file's stem when the file has none."""
    path = Path(path)
    tensors, header = read_tensor_file(path)
    lora = lora_from_tensors(tensors, header, module_names)
    if name or not lora.name:
        lora = lora.with_metadata(name=name or path.stem)
    return lora
