"""Reading and writing LoRA files: safetensors only on write, never unpickling on read, atomic saves.

A save goes to a temporary file in the target folder, is fsynced and then renamed over the target, so a crash or
a full disk never leaves a half-written LoRA where a user (or AnimateDiff-Evolved) would pick it up. The file gets
the mode a plain ``open()`` would give it under the user's umask (mkstemp alone makes it 0600).

Reading checks what the sampler would otherwise trust blindly: every tensor finite, every alpha finite and of a
sane size, so a poisoned file is refused at load naming the tensor, instead of "succeeding" with a black video.
Library errors are translated into what is wrong with the file; their raw text never reaches the user.
"""

from __future__ import annotations

import errno
import json
import math
import os
import pickle
import re
import struct
import tempfile
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from ..errors import InvalidInputError, LoraFileError, LoraMismatchError, MotionCoreError
from .formats import animatediff, canonical, kohya, sd15_comfy, wan_comfy
from .formats.detect import FORMATS, detect_format
from .metadata import decode_header
from .motion_lora import MotionLora

PICKLE_SUFFIXES = (".pt", ".ckpt", ".pth", ".bin")


class FileExistsRefusedError(LoraFileError, FileExistsError):
    """The target exists and the caller did not ask to overwrite it."""


# |alpha / rank| above this turns a LoRA into noise (the usual range is 0.5..2); bigger values are a broken header.
MAX_ALPHA_SCALE = 1024.0
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (changing it races with other threads)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def clean_library_text(text: str, limit: int = 160) -> str:
    """Library messages without terminal colour codes, on one line, cut short (for logs and last-resort detail)."""
    text = " ".join(_ANSI.sub("", str(text)).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def atomic_write(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` all-or-nothing; on failure the target is untouched and no temp file remains.

    With ``overwrite=False`` an existing target raises FileExistsRefusedError, checked atomically (a hard link
    either creates the name or fails), so two saves racing for one name never replace each other.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not overwrite and path.exists():
            raise FileExistsError(errno.EEXIST, "exists", str(path))
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), 0o666 & ~current_umask())
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
        tmp = None
    except FileExistsError:
        raise FileExistsRefusedError(
            f"{path} already exists and was left as it is. Choose another name, or ask to overwrite it "
            "explicitly (e.g. --overwrite on the command line)."
        ) from None
    except OSError as err:
        raise LoraFileError(
            f"Could not write {path}: {err.strerror or clean_library_text(err)}. Free some disk space or choose a "
            "folder you can write to, then save again."
        ) from err
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def _link_new(tmp: str, path: Path) -> None:
    """Give the finished temp file its name only if the name is free; falls back to a checked rename where the
    file system has no hard links (FAT, some network mounts)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:
        if path.exists():
            raise FileExistsError(errno.EEXIST, "exists", str(path)) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def save_lora(lora: MotionLora, path: str | os.PathLike, format: str = "canonical", *,
              overwrite: bool = True) -> Path:
    """Write ``lora`` as safetensors in ``format`` ("canonical", "animatediff", "kohya", or "comfyui": ComfyUI's
    native Wan layout, Wan LoRAs only); returns the path. A LoRA with a DeT temporal kernel keeps it only in the
    canonical file; the comfyui file gets the LoRA part, says so in its header, and the save warns.

    overwrite=False refuses an existing file (FileExistsRefusedError) instead of replacing it."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise InvalidInputError(f"LoRAs are saved as .safetensors; got {path.name}. Use a name ending in .safetensors.")
    writers = {"canonical": canonical.to_canonical_file, "animatediff": animatediff.to_animatediff_file,
               "kohya": kohya.to_kohya_file, "comfyui": wan_comfy.to_comfy_wan_file}
    if format not in writers:
        raise InvalidInputError(f"Unknown LoRA format {format!r}; choose one of {', '.join(FORMATS)}.")
    if lora.patches and format not in ("canonical", "comfyui"):
        raise InvalidInputError(
            f"LoRA '{lora.name}' carries full-weight patches (.diff / .diff_b on {len(lora.patched_modules())} layers, "
            f"e.g. {lora.patched_modules()[0]}) that the {format} layout has no place for. Save it as canonical or, "
            "for a Wan LoRA, comfyui; both keep them."
        )
    if lora.kernel and format != "canonical":
        if format != "comfyui":
            raise InvalidInputError(
                f"LoRA '{lora.name}' carries a DeT temporal kernel, which the {format} layout has no place for. Save "
                "it as canonical (the whole LoRA) or, for core's LoraLoaderModelOnly, comfyui (the LoRA part).")
        warnings.warn(f"{path.name}: {wan_comfy.KERNEL_NOTE}", UserWarning, stacklevel=2)
    tensors, header = writers[format](lora)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write(path, safetensors_bytes(tensors, metadata=header), overwrite=overwrite)
    return path


def _read_pickle_free(path: Path) -> dict[str, torch.Tensor]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise LoraFileError(
            f"Refused to load {path.name} (in {path.parent}): it contains pickled Python objects, which could run "
            "code (or it is not a PyTorch file at all). Convert it to .safetensors with a tool you trust, or get a "
            ".safetensors release."
        ) from err
    except Exception as err:  # torch raises RuntimeError, EOFError, zipfile errors, ... on cut or foreign files
        raise LoraFileError(
            f"{path} is not a readable PyTorch weights file ({_empty_or_cut(path)}). Re-download or re-export it, "
            "preferably as .safetensors."
        ) from err
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise LoraFileError(f"{path} holds a {type(obj).__name__}, not a dict of LoRA weights; pick a LoRA file.")
    return {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}


def _empty_or_cut(path: Path) -> str:
    try:
        size = path.stat().st_size
    except OSError:
        return "it cannot be read"
    return "the file is empty" if size == 0 else "it is truncated, corrupt or another kind of file"


def safetensors_problem(path: Path) -> str:
    """What is wrong with a file safetensors refused, in the user's words (the library's own text is not shown)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(8)
            if size == 0:
                return "the file is empty (0 bytes)"
            if len(head) < 8:
                return f"the file is only {size} bytes long, too short for a safetensors header"
            (header_len,) = struct.unpack("<Q", head)
            if header_len > size - 8:
                return (f"it is truncated or not a safetensors file: its header claims {header_len:,} bytes but the "
                        f"file holds {size:,}")
            if header_len > 100_000_000:
                return f"its header is {header_len:,} bytes, far more than any LoRA needs"
            header = json.loads(handle.read(header_len))
    except OSError as err:
        return f"it cannot be read ({err.strerror or 'I/O error'})"
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return "its header is not valid JSON, so it is not a safetensors file (perhaps another format renamed)"
    if not isinstance(header, dict):
        return "its header is not a table of tensors"
    data = size - 8 - header_len
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            return f"tensor {name!r} has no valid data offsets in the header"
        if offsets[1] > data:
            return f"it is truncated: tensor {name!r} ends at byte {offsets[1]:,} of the data but only {data:,} remain"
    return "its tensor table is inconsistent (wrong dtype, shape or overlapping data)"


def read_tensor_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, header) from .safetensors, or from .pt/.ckpt/.pth/.bin through ``weights_only`` loading."""
    path = Path(path)
    if not path.is_file():
        raise LoraFileError(f"LoRA file not found: {path}. Put the file there or pick another one.")
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return _read_pickle_free(path), {}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return {k: handle.get_tensor(k) for k in handle.keys()}, dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as err:
        raise LoraFileError(
            f"{path} is not a valid safetensors file: {safetensors_problem(path)}. Re-download or re-export it."
        ) from err


def check_finite_file(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Refuse NaN/inf weights and non-number tensors up front, naming the file and the first bad tensor."""
    for key, tensor in tensors.items():
        if not (tensor.is_floating_point() or key.endswith(".alpha")):
            raise LoraFileError(
                f"{path}: tensor {key!r} holds {str(tensor.dtype).replace('torch.', '')} values, not weights. The "
                "file is corrupt or not a LoRA; re-export it."
            )
        if tensor.numel() and not bool(torch.isfinite(tensor.float()).all()):
            raise LoraFileError(
                f"{path}: tensor {key!r} contains NaN or infinite values, which would turn every sample black. "
                "The LoRA is broken (often a run whose loss diverged); retrain it with a lower learning rate or "
                "use an earlier checkpoint."
            )
        # ComfyUI's Train LoRA node stores bias and norm patches as vectors (.diff_b, .diff); readers report them
        if not key.endswith((".alpha", ".diff", ".diff_b")) and tensor.ndim < 2:
            raise LoraFileError(
                f"{path}: tensor {key!r} has shape {tuple(tensor.shape)}; LoRA weights are matrices (or conv "
                "kernels). The file is corrupt or not a LoRA."
            )


def check_header_alpha(path: Path, header: dict[str, str]) -> None:
    """Header alphas as written, before MotionLora reads "alpha <= 0" as "alpha = rank" and hides a -inf."""
    meta = decode_header(header)
    if meta is None:
        return
    for where, value in [("alpha", meta["alpha"]), *((f"alpha_pattern[{m!r}]", a)
                                                    for m, a in meta["alpha_pattern"].items())]:
        try:
            finite = math.isfinite(float(value))
        except (TypeError, ValueError):
            finite = False
        if not finite:
            raise LoraFileError(
                f"{path}: header field {where} is {value!r}, not a finite number. Fix the file's header (alpha = rank "
                "is neutral) or re-export the LoRA."
            )


def check_scales(path: Path, lora: MotionLora) -> None:
    """Alpha comes from the header or from .alpha tensors; a NaN/inf or absurd alpha would poison every step."""
    for module in lora.modules():
        alpha = lora.module_alpha(module)
        rank = lora.weights(module)[0].shape[0]
        if not math.isfinite(alpha) or abs(alpha) / max(rank, 1) > MAX_ALPHA_SCALE:
            raise LoraFileError(
                f"{path}: module {module!r} has alpha {alpha} for rank {rank}, a scale of {alpha / max(rank, 1):g}; "
                f"a usable LoRA's alpha/rank is finite and at most {MAX_ALPHA_SCALE:g}. Fix the file's 'alpha' header "
                "field (alpha = rank is neutral) or re-export it."
            )


def lora_from_tensors(tensors: dict[str, torch.Tensor], header: dict[str, str] | None = None,
                      module_names=None) -> MotionLora:
    """Any supported layout -> MotionLora in canonical keys. ``module_names`` (the denoiser's ``named_modules()``
    names) is needed only for kohya files and ComfyUI's SD1.5 layout, whose names must be resolved against the model;
    without it they are resolved against the released SD1.5 (then ZeroScope) UNet."""
    fmt = detect_format(tensors)
    if fmt == "kohya" and module_names is None:
        return _with_reference_names(lambda names: kohya.from_kohya_file(tensors, header, names, decode_header(header)),
                                     ("sd15", "unet3d"))
    if fmt == "kohya":
        return kohya.from_kohya_file(tensors, header, module_names, decode_header(header))
    if fmt == "animatediff":
        return animatediff.from_animatediff_file(tensors, decode_header(header))
    if fmt == "comfyui":
        if sd15_comfy.looks_like(tensors) and module_names is None:
            return _with_reference_names(lambda names: sd15_comfy.from_comfy_sd_file(tensors, header, names), ("sd15",))
        if sd15_comfy.looks_like(tensors):
            return sd15_comfy.from_comfy_sd_file(tensors, header, module_names)
        return wan_comfy.from_wan_file(tensors, header)
    return canonical.from_peft_file(tensors, header)


def _with_reference_names(read, architectures):
    """Read a file whose names need a model against the released architectures it is made for, in order (a loader
    node with no model wired in); the first that resolves every key wins, else the last error stands."""
    from ..backbones.reference_modules import reference_module_names

    error = None
    for architecture in architectures:
        try:
            return read(reference_module_names(architecture))
        except (LoraMismatchError, InvalidInputError) as err:
            error = err
    raise error


def load_lora(path: str | os.PathLike, module_names=None, *, name: str | None = None) -> MotionLora:
    """Read a LoRA file of any supported layout. The name defaults to the file's stem when the file has none."""
    path = Path(path)
    tensors, header = read_tensor_file(path)
    check_finite_file(path, tensors)
    check_header_alpha(path, header)
    try:
        lora = lora_from_tensors(tensors, header, module_names)
    except MotionCoreError as err:
        raise type(err)(f"{path}: {err}") from None
    check_scales(path, lora)
    if name or not lora.name:
        lora = lora.with_metadata(name=name or path.stem)
    return lora
