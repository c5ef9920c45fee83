"""Wan 2.1 / 2.2 text- and image-to-video: the backbone (``backbone``, ``image_condition``), its diffusers folders and
ComfyUI single files (``loading``, ``files``, ``single_file``, ``text_encoder``, ``clip_vision``, ``keys``), what the
reference code says of each release (``releases``), the A14B experts (``experts``), tiny models for tests (``tiny``)
and the shipped configs of the released sizes (``configs/``)."""

from __future__ import annotations

from pathlib import Path

from ..family import Family, LoadRequest
from .backbone import MAX_TEXT_TOKENS, WanBackbone
from .files import CONFIGS_DIR
from .loading import is_wan_file, is_wan_folder, load_wan_backbone
from .tiny import save_tiny_wan_diffusers_folder, save_tiny_wan_i2v_diffusers_folder, tiny_wan_backbone


def _recognises(path: Path) -> bool:
    # ComfyUI's Wan files are all .safetensors, whose header names the tensors without reading them.
    return is_wan_folder(path) if path.is_dir() else path.suffix.lower() == ".safetensors" and is_wan_file(path)


def _load(request: LoadRequest):
    return load_wan_backbone(request.path, vae_path=request.vae, text_encoder_path=request.text_encoder,
                             tokenizer_dir=request.tokenizer_dir, expert=request.expert, dtype=request.dtype,
                             device=request.device, clip_vision_path=request.clip_vision, keep_fp8=request.keep_fp8)


def _plan(request: LoadRequest):
    from .preload import plan_wan

    return plan_wan(request)


FAMILY = Family("wan", "Wan 2.1 / 2.2 text- and image-to-video (a WanPipeline or WanImageToVideoPipeline folder, "
                "or ComfyUI's diffusion-model, VAE, UMT5 and CLIP vision files)", _recognises, _load, _plan)

__all__ = ["CONFIGS_DIR", "FAMILY", "MAX_TEXT_TOKENS", "WanBackbone", "load_wan_backbone",
           "save_tiny_wan_diffusers_folder", "save_tiny_wan_i2v_diffusers_folder", "tiny_wan_backbone"]
