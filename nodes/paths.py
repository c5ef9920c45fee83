"""Where the pack's files live in ComfyUI's models tree, registered once with folder_paths.

motion_loras: LoRAs this pack trains and saves (and loads back); animatediff_models: motion modules, the folder
AnimateDiff-Evolved users already have. Core already knows checkpoints, diffusers and loras.
"""

from __future__ import annotations

import os
from pathlib import Path

import folder_paths

MOTION_LORAS = "motion_loras"
ANIMATEDIFF_MODELS = "animatediff_models"
LORA_EXTENSIONS = {".safetensors", ".ckpt", ".pt", ".pth", ".bin"}
BUILTIN_SHAPES_T2V = "built-in: ShapesT2V"
SHAPES_T2V_DIR = Path(__file__).resolve().parents[1] / "motion_core" / "toy" / "shapes_t2v"


def register_folders() -> None:
    for name in (MOTION_LORAS, ANIMATEDIFF_MODELS):
        default = os.path.join(folder_paths.models_dir, name)
        if name not in folder_paths.folder_names_and_paths:
            folder_paths.folder_names_and_paths[name] = ([default], set(LORA_EXTENSIONS))
        os.makedirs(default, exist_ok=True)


def diffusers_model_folders() -> list[str]:
    """Relative names of folders with a model_index.json under every registered `diffusers` path."""
    found = []
    for root in folder_paths.get_folder_paths("diffusers"):
        if os.path.isdir(root):
            for here, _dirs, files in os.walk(root, followlinks=True):
                if "model_index.json" in files:
                    found.append(os.path.relpath(here, root))
    return sorted(found)


def model_choices() -> list[str]:
    """Every model the loader can open, labelled by where it comes from."""
    choices = [BUILTIN_SHAPES_T2V] if (SHAPES_T2V_DIR / "model_index.json").exists() else []
    choices += [f"diffusers: {name}" for name in diffusers_model_folders()]
    choices += [f"checkpoint: {name}" for name in folder_paths.get_filename_list("checkpoints")]
    return choices


def resolve_model(choice: str) -> str:
    """Turn a choice from `model_choices` (or an absolute path typed by the user) into a path on disk."""
    if choice == BUILTIN_SHAPES_T2V:
        return str(SHAPES_T2V_DIR)
    kind, _, name = choice.partition(": ")
    if kind == "diffusers":
        for root in folder_paths.get_folder_paths("diffusers"):
            candidate = os.path.join(root, name)
            if os.path.isdir(candidate):
                return candidate
    elif kind == "checkpoint":
        found = folder_paths.get_full_path("checkpoints", name)
        if found:
            return found
    elif os.path.isabs(choice):
        return choice
    from ..motion_core.errors import ModelLoadError

    raise ModelLoadError(
        f"Model {choice!r} was not found. Put diffusers folders (with model_index.json) in models/diffusers/ and "
        "single-file SD1.5 checkpoints in models/checkpoints/, then refresh the node (press R)."
    )


def comfy_tokenizer_dir() -> str:
    """ComfyUI ships the SD1.5 CLIP tokenizer files; models without their own tokenizer fall back to them."""
    import comfy.sd1_clip

    return os.path.join(os.path.dirname(comfy.sd1_clip.__file__), "sd1_tokenizer")
