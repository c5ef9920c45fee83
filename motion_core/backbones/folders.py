"""The parts of a diffusers folder every family reads the same way: a component's ``from_pretrained`` (local only,
weights checked before and after), its scheduler and its JSON files, each failure a ModelLoadError that says which
folder, what is wrong and what to do (the library's own words go to the log)."""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import torch

from ..errors import ModelLoadError
from .files import all_finite, check_finite, require_regular_file, safetensors_header

log = logging.getLogger(__name__)

LIBRARY_LOAD_ERRORS = (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError, pickle.UnpicklingError)
"""What diffusers / transformers raise for a folder they cannot load; UnpicklingError is torch's refusal of a pickled
.bin that needs code (its message advises disabling that safety, which a user must never be told)."""

NOT_A_MODEL = ("pick a diffusers folder like zeroscope_v2_576w or text-to-video-ms-1.7b, or a Stable Diffusion 1.5 "
               ".safetensors checkpoint together with an AnimateDiff motion module")


def from_pretrained_local(model_class, folder, subfolder, dtype):
    if not (folder / subfolder / "config.json").is_file():
        raise ModelLoadError(f"{folder / subfolder} is missing or has no config.json: the model folder is incomplete "
                             f"(expected subfolders unet, vae, text_encoder, tokenizer, scheduler).")
    check_weight_files(folder / subfolder)
    try:
        model = model_class.from_pretrained(folder, subfolder=subfolder, torch_dtype=dtype, local_files_only=True)
    except LIBRARY_LOAD_ERRORS as error:
        raise folder_error(folder / subfolder, model_class.__name__, error) from error
    return check_loaded_finite(model, folder / subfolder)


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth")


def check_weight_files(directory: Path) -> None:
    """Before a library opens a folder's weights: every weights file must be a regular file (a FIFO would block the
    load forever) and every .safetensors file complete (a cut-off download is named, not a library message)."""
    try:
        entries = sorted(directory.iterdir())
    except OSError:
        return  # the library's own error (missing folder) is reported by the caller
    for entry in entries:
        if entry.name.lower().endswith(WEIGHT_SUFFIXES):
            require_regular_file(entry, f"a weights file of {directory.name}")
            if entry.name.lower().endswith(".safetensors"):
                safetensors_header(entry)


def check_loaded_finite(model: torch.nn.Module, directory: Path) -> torch.nn.Module:
    """Refuse a model whose loaded weights hold NaN/inf, naming the folder's weights file and the tensor. One pass
    over the tensors as they are (chunked, no copy), so a big folder costs one read of its weights."""
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if not all_finite(tensor):
            files = [p.name for p in sorted(directory.glob("*")) if p.name.lower().endswith(WEIGHT_SUFFIXES)]
            where = directory / files[0] if len(files) == 1 else directory
            check_finite(tensor, str(where), name)
    return model


def pickle_refused(directory: Path) -> ModelLoadError:
    return ModelLoadError(
        f"{directory} holds a pickled weights file (.bin / .pt) that needs code to load, and such files are refused: "
        "loading them could run that code. Use this model's .safetensors weights instead (re-download the folder in "
        "safetensors form)."
    )


def folder_error(directory: Path, what: str, error: Exception) -> ModelLoadError:
    """The library's words go to the log; the user reads what is wrong where and what to do."""
    log.warning("loading %s from %s failed: %s", what, directory, error)
    if isinstance(error, pickle.UnpicklingError):
        return pickle_refused(directory)
    return ModelLoadError(
        f"{directory} could not be loaded as a {what}: its weights are missing, damaged, or do not match its "
        "config.json. Re-download that folder (ComfyUI's log has the loader's own message)."
    )


def load_scheduler(directory: Path):
    import diffusers
    from diffusers import SchedulerMixin

    config = read_json(directory / "scheduler_config.json", "the noise schedule (scheduler/scheduler_config.json)")
    scheduler_class = getattr(diffusers, str(config.get("_class_name", "")), None)
    if not (isinstance(scheduler_class, type) and issubclass(scheduler_class, SchedulerMixin)):
        raise ModelLoadError(f"{directory} names an unknown scheduler {config.get('_class_name')!r}.")
    return scheduler_class.from_config(config)


def read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ModelLoadError(f"{path} not found: expected {what} there ({NOT_A_MODEL}).")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        log.warning("reading %s failed: %s", path, error)
        raise ModelLoadError(f"{path} is not readable JSON (it is damaged, cut off or another kind of file): "
                             f"expected {what} there; re-download that file.") from error
