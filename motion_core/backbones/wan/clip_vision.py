"""The CLIP vision encoder Wan 2.1 image-to-video reads, from ComfyUI's models/clip_vision file, and whether a
diffusion model and such a file belong together.

``clip_vision_h.safetensors`` is OpenCLIP's ViT-H/14 image tower already in transformers' names
(``vision_model.embeddings.*``, ``vision_model.encoder.layers.N.{self_attn,mlp,layer_norm1,layer_norm2}.*``,
``vision_model.pre_layrnorm``/``post_layernorm`` and ``visual_projection.weight``): ComfyUI core loads it as it is
(comfy/clip_vision.py) and picks its config by the layer count (clip_vision_config_h.json: 1280 wide, 32 layers of 16
heads, 14-pixel patches of a 224-pixel image, GELU). Here it becomes transformers' CLIPVisionModelWithProjection,
the class diffusers' converter gives WanImageToVideoPipeline, built on the meta device and filled by assignment with
every tensor of the file: none is left over and none is missing.

Only the header is read before the pair is judged, so a wrong file is refused before a 14B model is read. Wan reads
the penultimate layer's states of 257 tokens, as wide as the transformer's image embedder (1280): clip_vision_l
(ViT-L, 1024) or clip_vision_g (ViT-bigG, 1664) are refused by that width.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from ...errors import ModelLoadError
from ..files import load_weights_into, read_state_dict, safetensors_header
from .files import CONFIGS_DIR, FOLDERS, block_count, check_weight_tensors, expect_kind, read_weights

PREFIX = "vision_model."
LAYERS = PREFIX + "encoder.layers."
_POSITION_IDS = PREFIX + "embeddings.position_ids"
"""An index table transformers once saved with the weights (0..256): not a weight, so it is dropped when present."""
HEAD_WIDTH = 80
"""ViT-H/14's attention heads are 80 wide (1280 / 16); a file's shapes do not record the head count. Widths that 80
does not divide (OpenAI's ViT-L, 1024) get 64-wide heads, which only matters for naming their width in a refusal."""
CHOOSE = f"choose clip_vision_h.safetensors from {FOLDERS['clip_vision'].split(' (')[0]}"


def clip_vision_shapes(path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape of a CLIP vision file: a .safetensors file's header only (capped in size, checked against
    the file's length); a .ckpt/.pt/.pth is read as plain tensors (never unpickled)."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        return {k: tuple(v.shape) for k, v in read_state_dict(path).items()}
    shapes = {}
    for key, entry in safetensors_header(path).items():
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise ModelLoadError(f"{path.name} is not a valid .safetensors file (tensor {key[:80]!r} has no usable "
                                 "shape); it is damaged or crafted. Re-download it.")
        shapes[key] = tuple(shape)
    return shapes


def clip_vision_config(shapes: dict, name: str) -> dict:
    """A CLIPVisionConfig (as a dict) from a file's shapes: ViT-H/14's shipped config for clip_vision_h, else one
    derived from the shapes with ViT-H's head width and activation (tiny test encoders, prunes)."""
    keys = list(shapes)
    expect_kind(name, keys, "clip_vision")
    if any(k.startswith("visual.") for k in keys):
        raise ModelLoadError(f"{name} is a CLIP checkpoint in OpenCLIP's own layout; Wan needs ComfyUI's repackaged "
                             f"vision tower: {CHOOSE}.")
    embeddings = PREFIX + "embeddings."
    if embeddings + "class_embedding" not in shapes or embeddings + "patch_embedding.weight" not in shapes:
        raise ModelLoadError(f"{name} is a vision encoder without CLIP's class token (SigLIP or another family), "
                             f"not the CLIP vision model Wan 2.1 reads: {CHOOSE}.")
    try:
        hidden, channels, patch = shapes[embeddings + "patch_embedding.weight"][:3]
        positions = shapes[embeddings + "position_embedding.weight"][0]
        intermediate = shapes[LAYERS + "0.mlp.fc1.weight"][0]
    except (KeyError, ValueError, IndexError) as error:
        raise ModelLoadError(f"{name} lacks core CLIP vision weights ({error}); re-download it.") from error
    layers = block_count(keys, LAYERS, name, "CLIP vision encoder")
    grid = math.isqrt(max(positions - 1, 0))
    if min(patch, channels, grid) < 1 or grid * grid != positions - 1 or hidden % 64 and hidden % HEAD_WIDTH:
        raise ModelLoadError(f"{name} is not a CLIP vision encoder Wan can use ({positions} positions, {hidden} "
                             f"wide); re-download it, or {CHOOSE}.")
    config = {"hidden_size": hidden, "intermediate_size": intermediate, "num_hidden_layers": layers,
              "num_attention_heads": hidden // (64 if hidden % HEAD_WIDTH else HEAD_WIDTH),
              "num_channels": channels, "patch_size": patch,
              "image_size": patch * grid, "hidden_act": "gelu", "layer_norm_eps": 1e-5}
    if "visual_projection.weight" in shapes:
        config["projection_dim"] = shapes["visual_projection.weight"][0]
    shipped = json.loads((CONFIGS_DIR / "clip_vision_h" / "config.json").read_text())
    return shipped if all(shipped.get(k) == v for k, v in config.items()) else config


def check_pair(transformer_name: str, image_dim, clip_vision_path, clip_width=None) -> None:
    """A transformer that reads CLIP features needs the CLIP file of that width; one that reads none takes none."""
    if image_dim and clip_vision_path is None:
        raise ModelLoadError(
            f"{transformer_name} is a Wan 2.1 image-to-video model: it reads CLIP vision features of the start image, "
            f"so it needs its CLIP vision encoder: {CHOOSE} (clip_vision in Load Video Model).")
    if not image_dim and clip_vision_path is not None:
        raise ModelLoadError(
            f"{Path(clip_vision_path).name} is a CLIP vision encoder, but {transformer_name} reads no CLIP features "
            "(only Wan 2.1 image-to-video does; Wan 2.2's image-to-video models take the image as latents alone): "
            "set clip_vision to none.")
    if image_dim and clip_width is not None and int(clip_width) != int(image_dim):
        raise ModelLoadError(
            f"{Path(clip_vision_path).name} gives {clip_width}-wide image features but {transformer_name} reads "
            f"{image_dim}-wide ones (ViT-H/14): {CHOOSE}, not clip_vision_l or clip_vision_g.")


def inspect_clip_vision_file(path) -> dict:
    """The config of a CLIP vision file, from its header; refusals name the file and the fix."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"{path} not found: {CHOOSE}.")
    return clip_vision_config(clip_vision_shapes(path), path.name)


def load_clip_vision_file(path, dtype: torch.dtype = torch.float32, config: dict | None = None):
    """transformers' CLIPVisionModelWithProjection (CLIPVisionModel for a file without the projection) from a
    models/clip_vision file, frozen-ready in ``dtype``; fp8 and scaled-fp8 files are widened as the Wan reader does."""
    path = Path(path)
    config = dict(config or inspect_clip_vision_file(path))
    weights = read_weights(path, dtype)
    weights.pop(_POSITION_IDS, None)
    check_weight_tensors(weights, path.name, "CLIP vision encoder")
    model = clip_vision_on_meta(config, "visual_projection.weight" in weights)
    if not any(key.startswith(PREFIX) for key in model.state_dict()):  # transformers 5 names CLIPVisionModel bare
        weights = {key.removeprefix(PREFIX): value for key, value in weights.items()}
    load_weights_into(model, weights, path.name, "CLIP vision encoder")
    embeddings = getattr(model, "vision_model", model).embeddings
    # A buffer in no file: rebuilt on the CPU, as the model's constructor makes it.
    embeddings.position_ids = torch.arange(embeddings.num_positions).expand((1, -1))
    return model.eval()



def clip_vision_on_meta(config: dict, projection: bool):
    """The CLIP vision model of ``config`` on the meta device (with its projection when the file has one)."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, CLIPVisionModelWithProjection

    config = {k: v for k, v in config.items() if k != "architectures"}
    with torch.device("meta"):
        return (CLIPVisionModelWithProjection if projection else CLIPVisionModel)(CLIPVisionConfig(**config))
