"""The tiny image-to-video Wan models of motion_core/backbones/wan/tiny_native.py written as the files ComfyUI users
keep (models/diffusion_models, models/vae, models/clip_vision; the text encoder is the T2V tiny model's UMT5 file of
tests/wan_samples.py), in float32. Core's loaders and ours read the same files. A start image for LoadImage too."""

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from motion_core.backbones.wan.clip_vision import inspect_clip_vision_file
from motion_core.backbones.wan.keys import diffusers_to_original
from motion_core.backbones.wan.tiny import COMFY_FREQ_DIM
from motion_core.backbones.wan.tiny_native import tiny_wan_native_parts
from tests.wan_samples import COMFY_FILES, _vae_to_original, place_tiny_wan_files

PREFIX = "model.diffusion_model."


def native_i2v_files(kind: str) -> dict:
    """File names per ComfyUI models folder for one kind ("concat", "clip", "ti2v")."""
    files = {"diffusion_models": f"wan_tiny_i2v_{kind}.safetensors",
             "vae": "wan_tiny_wan22_vae.safetensors" if kind == "ti2v" else "wan_tiny_core_vae.safetensors"}
    if kind == "clip":
        files["clip_vision"] = "clip_vision_tiny.safetensors"
    return {**files, "text_encoders": COMFY_FILES["text_encoders"]}


def write_native_i2v_files(models_dir, kind: str, seed: int = 0) -> dict:
    """Write one kind's files into ``models_dir``'s folders (skipping files already there); returns their names.
    The CLIP vision file has the released file's key names and, beside it as .json, the config our loader derives
    from its shapes: core's loader only recognises the released encoder sizes, so a test node builds core's
    ClipVisionModel from that config."""
    models_dir = Path(models_dir)
    place_tiny_wan_files(models_dir, freq_dim=COMFY_FREQ_DIM)
    names = native_i2v_files(kind)
    parts = tiny_wan_native_parts(seed, kind=kind)
    tensors = {
        "diffusion_models": diffusers_to_original(parts["denoiser"].state_dict(), PREFIX),
        "vae": _vae_to_original(parts["vae"].state_dict(), kind == "ti2v", parts["vae"].config.num_res_blocks),
    }
    if kind == "clip":
        encoder = parts["image_encoder"]
        # the released clip_vision_h keys; transformers 5's CLIPVisionModel names its parameters without the prefix
        state = {k if k.startswith("vision_model.") else f"vision_model.{k}": v for k, v in encoder.state_dict().items()}
        state["visual_projection.weight"] = torch.zeros(encoder.config.projection_dim, encoder.config.hidden_size)
        tensors["clip_vision"] = state
    for folder, state in tensors.items():
        path = models_dir / folder / names[folder]
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            save_file({k: v.float().contiguous() for k, v in state.items()}, str(path))
    if kind == "clip":
        path = models_dir / "clip_vision" / names["clip_vision"]
        config = {**inspect_clip_vision_file(path), "model_type": "clip_vision_model"}
        path.with_suffix(".json").write_text(json.dumps(config))
    return names


def write_start_image(path, size: int = 64, seed: int = 5) -> torch.Tensor:
    """A PNG of a coloured square on a noisy background; returns it as LoadImage gives it (IMAGE [1, H, W, 3])."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(60, 120, (size, size, 3), dtype=np.uint8)
    pixels[size // 4: size // 2, size // 4: size // 2] = (220, 40, 30)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return torch.from_numpy(np.array(Image.open(path).convert("RGB")).astype(np.float32) / 255.0)[None]


KINDS = ("concat", "clip", "ti2v")
HARNESS = Path(__file__).parent / "harness"


def prepare_i2v_comfy_base(base, start_image: str, size: int) -> None:
    """A ComfyUI base directory for the image-to-video native tests: the test-only nodes in custom_nodes (before the
    server starts), every kind's files in models/ and the start image in input/."""
    base = Path(base)
    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    for name in ("native_test_nodes.py", "native_i2v_test_nodes.py"):
        (base / "custom_nodes" / f"md_test_{name}").write_text((HARNESS / name).read_text())
    for kind in KINDS:
        write_native_i2v_files(base / "models", kind)
    write_start_image(base / "input" / start_image, size)

