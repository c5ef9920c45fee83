"""A Wan model's parts on the meta device, before loading (the memory plan's view; ../preload.py says why).

A diffusers folder gives each part's config.json; a ComfyUI file gives its .safetensors header, whose shapes the
loader's own readers turn into a config (single_file.transformer_on_meta, vae_on_meta, text_encoder.umt5_on_meta,
clip_vision) and whose dtypes say what stays fp8 (files.read_weights_on_meta). The same refusals as loading (a wrong
kind of file, a VAE or text encoder that does not fit) are made here, from the same code. Only tokenizers and
scheduler configs are read in full: small files, no weights.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ...errors import ModelLoadError
from ..family import LoadRequest
from ..memory import adopt_fp8_weight
from ..preload import NoPlanBeforeLoading, PlannedModel, mapped_loading_host, streamed_loading_host


def plan_wan(request: LoadRequest) -> PlannedModel:
    """The WanBackbone ``load_wan_backbone`` would give for ``request``, on the meta device, and its loading cost."""
    from .loading import EXPERTS, _check_fit, wan_backbone_from_parts

    if request.expert not in EXPERTS:
        raise ModelLoadError(f"expert must be one of {EXPERTS}, got {request.expert!r}.")
    path, dtype = Path(request.path), request.dtype
    keep_fp8 = torch.device(request.device).type == "cuda" if request.keep_fp8 is None else bool(request.keep_fp8)
    for given in (request.vae, request.text_encoder, request.clip_vision):
        if given is not None and Path(given).suffix.lower() != ".safetensors":
            raise NoPlanBeforeLoading(f"{Path(given).name} is not a .safetensors file, whose header alone would give "
                                      "its architecture")
    if path.is_dir():
        parts, folders = _folder_parts(path, request, dtype)
    else:
        parts, folders = _file_parts(path, request, dtype, keep_fp8), None
    if request.vae is not None and path.is_dir():
        parts["vae"] = _vae_file(request.vae)
    if request.text_encoder is not None and path.is_dir():
        parts["text_encoder"] = _text_encoder_file(request.text_encoder)
    if request.tokenizer_dir is not None:
        from .text_encoder import load_umt5_tokenizer

        parts["tokenizer"] = load_umt5_tokenizer(None, request.tokenizer_dir)
    _check_fit(parts, path)
    parts["model_info"]["files"] = [str(p) for p in (path, request.vae, request.text_encoder, request.clip_vision)
                                    if p is not None]
    parts["model_info"]["keep_fp8"] = keep_fp8
    backbone = wan_backbone_from_parts(parts, dtype, "meta", str(path))
    if folders is None:
        return PlannedModel(backbone, streamed_loading_host(backbone), "the files' headers")
    return PlannedModel(backbone, mapped_loading_host(backbone, folders), "the folder's config files")


def _file_parts(path: Path, request: LoadRequest, dtype, keep_fp8: bool) -> dict:
    from .clip_vision import check_pair, clip_vision_on_meta, clip_vision_shapes, inspect_clip_vision_file
    from .files import block_count, read_weights_on_meta
    from .keys import original_to_diffusers, strip_original_prefix
    from .loading import single_file_facts, transformer_file_kind
    from .single_file import _kept_fp8, transformer_on_meta

    kind = transformer_file_kind(path, request.vae, request.text_encoder)
    check_pair(path.name, kind == "transformer_clip", request.clip_vision)
    scales = {} if keep_fp8 else None
    weights = read_weights_on_meta(path, dtype, scales)
    block_count([strip_original_prefix(k) for k in weights], "blocks.", path.name, "Wan transformer")
    weights = original_to_diffusers(weights, path.name)
    scales = original_to_diffusers(scales, path.name) if scales else {}
    denoiser, arch = transformer_on_meta(weights, path.name, path.name)
    for key, scale in _kept_fp8(denoiser, weights, scales).items():
        adopt_fp8_weight(denoiser.get_submodule(key.removesuffix(".weight")), scale, dtype, weights[key])
    image_encoder = None
    image_dim = denoiser.config.get("image_dim")
    check_pair(path.name, image_dim, request.clip_vision)
    if request.clip_vision is not None:
        config = inspect_clip_vision_file(request.clip_vision)
        check_pair(path.name, image_dim, request.clip_vision, config["hidden_size"])
        image_encoder = clip_vision_on_meta(config, "visual_projection.weight" in clip_vision_shapes(
            request.clip_vision))
    scheduler, info = single_file_facts(path, arch, denoiser.config, request.expert)
    return {"denoiser": denoiser, "vae": _vae_file(request.vae), "text_encoder": _text_encoder_file(
        request.text_encoder), "tokenizer": None, "scheduler": scheduler, "image_encoder": image_encoder,
        "model_info": info}


def _vae_file(path) -> torch.nn.Module:
    from .files import expect_kind, read_weights_on_meta
    from .single_file import vae_on_meta

    path = Path(path)
    state = read_weights_on_meta(path, torch.float32)
    expect_kind(path, list(state), "vae")
    return vae_on_meta(state, path.name)


def _text_encoder_file(path) -> torch.nn.Module:
    from .files import expect_kind, read_weights_on_meta
    from .text_encoder import umt5_on_meta

    path = Path(path)
    weights = read_weights_on_meta(path, torch.float32)
    expect_kind(path, list(weights), "text_encoder")
    model, _ = umt5_on_meta(weights, path.name)
    return model


def _folder_parts(folder: Path, request: LoadRequest, dtype) -> tuple[dict, list[Path]]:
    """The parts from_pretrained would load, on the meta device, and the folders whose weights it would map."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    from ..folders import load_scheduler, read_json
    from .clip_vision import clip_vision_on_meta, clip_vision_shapes
    from .loading import folder_info, folder_layout, folder_tokenizer

    index, subfolder, config, two_experts, (clip_source, clip_detail) = folder_layout(folder, request.expert,
                                                                                      request.clip_vision)
    with torch.device("meta"):
        denoiser = WanTransformer3DModel.from_config(config)
        vae = AutoencoderKLWan.from_config(read_json(folder / "vae" / "config.json", "the Wan VAE config"))
        text_encoder = UMT5EncoderModel(UMT5Config.from_pretrained(folder / "text_encoder", local_files_only=True))
    image_encoder = None
    if clip_source == "folder":
        import transformers

        encoder_config = transformers.CLIPVisionConfig.from_pretrained(folder / "image_encoder",
                                                                       local_files_only=True)
        with torch.device("meta"):
            image_encoder = getattr(transformers, clip_detail)(encoder_config)
    elif clip_source == "file":
        projection = "visual_projection.weight" in clip_vision_shapes(request.clip_vision)
        image_encoder = clip_vision_on_meta(clip_detail, projection)
    parts = {"denoiser": denoiser, "vae": vae, "text_encoder": text_encoder, "tokenizer": folder_tokenizer(folder),
             "scheduler": load_scheduler(folder / "scheduler"), "image_encoder": image_encoder,
             "model_info": folder_info(index, config, request.expert, two_experts)}
    return parts, [folder / name for name in (subfolder, "vae", "text_encoder", "image_encoder")]


__all__ = ["NoPlanBeforeLoading", "plan_wan"]
