"""Where the pack's files live in ComfyUI's models tree, registered once with folder_paths.

motion_loras: LoRAs this pack trains and saves (and loads back); animatediff_models: motion modules, the folder
AnimateDiff-Evolved users already have; animatediff_motion_lora: the folder AnimateDiff-Evolved's "Load AnimateDiff
LoRA" lists (its Folders.MOTION_LORA), where AnimateDiff-layout motion LoRAs are saved. The names are ADE's own, so
with or without ADE installed both packs read the same folders. Core already knows checkpoints, diffusers and loras.

Dropdown values arrive from the browser unchecked (ComfyUI does not compare them with the listing for these
widgets), so every value is resolved through motion_core.safe_paths: it stays inside its registered folders.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import folder_paths

from ..motion_core.errors import ModelLoadError
from ..motion_core.safe_paths import folders_containing, refusal, resolve_in_folders

log = logging.getLogger(__name__)

MOTION_LORAS = "motion_loras"
ANIMATEDIFF_MODELS = "animatediff_models"
ANIMATEDIFF_MOTION_LORA = "animatediff_motion_lora"
LORA_EXTENSIONS = {".safetensors", ".ckpt", ".pt", ".pth", ".bin"}
BUILTIN_SHAPES_T2V = "built-in: ShapesT2V"
BUILTIN_SHAPES_WAN = "built-in: ShapesWan"
SHAPES_T2V_DIR = Path(__file__).resolve().parents[1] / "motion_core" / "toy" / "shapes_t2v"
SHAPES_WAN_DIR = SHAPES_T2V_DIR.with_name("shapes_wan")
BUILTIN_MODELS = {BUILTIN_SHAPES_T2V: SHAPES_T2V_DIR, BUILTIN_SHAPES_WAN: SHAPES_WAN_DIR,
                  "built-in: ShapesWan v2": SHAPES_T2V_DIR.with_name("shapes_wan_v2"),
                  "built-in: ShapesWan-I2V": SHAPES_T2V_DIR.with_name("shapes_wan_i2v"),
                  "built-in: ShapesWan-I2V v2": SHAPES_T2V_DIR.with_name("shapes_wan_i2v_v2")}
MODEL_FIX = (
    "Pick a model from the list (press R after adding one): diffusers folders (with model_index.json) go in "
    "models/diffusers/, single-file SD1.5 checkpoints in models/checkpoints/, Wan 2.1 / 2.2 diffusion-model files "
    "in models/diffusion_models/ (with their VAE in models/vae/, UMT5 in models/text_encoders/ and, for Wan 2.1 "
    "image-to-video, clip_vision_h in models/clip_vision/)."
)


def register_folders() -> None:
    """Registers our folders unless another pack (AnimateDiff-Evolved) did; its add_model_folder_path calls append
    to ours when it loads later, so the folders exist and are shared in either load order."""
    for name in (MOTION_LORAS, ANIMATEDIFF_MODELS, ANIMATEDIFF_MOTION_LORA):
        default = os.path.join(folder_paths.models_dir, name)
        if name not in folder_paths.folder_names_and_paths:
            folder_paths.folder_names_and_paths[name] = ([default], set(LORA_EXTENSIONS))
        os.makedirs(default, exist_ok=True)


def save_folder(name: str) -> str:
    """Where a new file of folder ``name`` is written: its first registered path (models/<name>, or one put first in
    extra_model_paths.yaml) that is not inside a custom node's package. AnimateDiff-Evolved registers such a folder
    for motion LoRAs, first when it loads first, and updating or reinstalling ADE would delete what was saved there."""
    registered = folder_paths.get_folder_paths(name)
    packages = [os.path.realpath(p) + os.sep for p in folder_paths.get_folder_paths("custom_nodes")]
    for path in registered:
        if not (os.path.realpath(path) + os.sep).startswith(tuple(packages)):
            return path
    return os.path.join(folder_paths.models_dir, name)


def diffusers_model_folders() -> list[str]:
    """Relative names of folders with a model_index.json under every registered `diffusers` path (bounded walk)."""
    found = []
    for root in folder_paths.get_folder_paths("diffusers"):
        walk = folders_containing(root, "model_index.json")
        if walk.stopped:
            log.warning("Listing diffusers models under %s %s; move unrelated files out of it.", root, walk.stopped)
        found += walk.dirs
    return sorted(set(found))


def model_choices() -> list[str]:
    """Every model the loader can open, labelled by where it comes from."""
    choices = [name for name, folder in BUILTIN_MODELS.items() if (folder / "model_index.json").exists()]
    choices += [f"diffusers: {name}" for name in diffusers_model_folders()]
    choices += [f"checkpoint: {name}" for name in folder_paths.get_filename_list("checkpoints")]
    # Wan 2.1 / 2.2 single files, as ComfyUI's own Wan workflows keep them (with a VAE and a UMT5 text encoder).
    choices += [f"diffusion model: {name}" for name in folder_paths.get_filename_list("diffusion_models")
                if name.lower().endswith(".safetensors")]
    return choices


def is_single_file_dit(choice: str) -> bool:
    """Whether a model choice is a diffusion-model file (needs the VAE and text encoder widgets)."""
    return str(choice).startswith("diffusion model: ")


def resolve_model(choice: str) -> str:
    """Turn a choice from `model_choices` into a path inside ComfyUI's model folders; anything else is refused."""
    if choice in BUILTIN_MODELS:
        return str(BUILTIN_MODELS[choice])
    kind, _, name = str(choice).partition(": ")
    if kind == "diffusers":
        path = resolve_in_folders(name, folder_paths.get_folder_paths("diffusers"), label="models/diffusers",
                                  fix=MODEL_FIX, want="dir", listed=diffusers_model_folders)
        if os.path.isfile(os.path.join(path, "model_index.json")):
            return path
    elif kind == "checkpoint":
        return resolve_listed("checkpoints", name, "models/checkpoints", MODEL_FIX)
    elif kind == "diffusion model":
        return resolve_listed("diffusion_models", name, "models/diffusion_models", MODEL_FIX)
    raise _model_refusal(choice)


def _model_refusal(choice):
    error = refusal(choice, "ComfyUI's model folders", MODEL_FIX)
    return ModelLoadError(str(error))


def resolve_listed(folder_name: str, name: str, label: str, fix: str) -> str:
    """A file from a folder_paths-registered folder's dropdown, kept inside that folder."""
    return resolve_in_folders(name, folder_paths.get_folder_paths(folder_name), label=label, fix=fix,
                              listed=lambda: folder_paths.get_filename_list(folder_name))


def comfy_roots() -> list[str]:
    """ComfyUI's own data folders: input, output, temp, models and every registered model folder (some live outside
    models/ through extra_model_paths.yaml). Typed paths may always reach these (motion_core.typed_paths)."""
    roots = [folder_paths.get_input_directory(), folder_paths.get_output_directory(),
             folder_paths.get_temp_directory(), folder_paths.models_dir]
    for name, (folders, _extensions) in list(folder_paths.folder_names_and_paths.items()):
        if name != "custom_nodes":
            roots += list(folders)
    return roots


COMFY_ROOTS_LABEL = "ComfyUI's input, output, temp or models folders"


def comfy_tokenizer_dir() -> str:
    """ComfyUI ships the SD1.5 CLIP tokenizer files; models without their own tokenizer fall back to them."""
    import comfy.sd1_clip

    return os.path.join(os.path.dirname(comfy.sd1_clip.__file__), "sd1_tokenizer")
