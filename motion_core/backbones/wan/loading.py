"""Wan 2.1 / 2.2 from disk: a diffusers WanPipeline or WanImageToVideoPipeline folder, or ComfyUI's single files
(diffusion model, VAE, UMT5 text encoder, and for Wan 2.1 image-to-video the CLIP vision encoder), local only.

Wan 2.2 A14B is two experts of one architecture: the high-noise one denoises t >= boundary_ratio * 1000, the low-noise
one the rest (T2V and I2V switch at different points: releases.py). A motion LoRA is trained per expert, so the
backbone's ``denoiser`` is one expert (``expert``; a file's name wins, as it cannot be the other one) and the boundary
travels on ``backbone.model_info`` for the sampler and the LoRA export (one file per expert). Sampling needs both:
``load_both_experts`` (or an ``other_expert_file``) adds the second one (experts.py).

Image-to-video models come as they do in ComfyUI: the diffusion model takes the image as extra latent channels, and
Wan 2.1's also reads CLIP vision features (``clip_vision_path``, or a folder's image_encoder/). A wrong pair is
refused from headers and configs, before any large file is read.
"""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import torch

from ...errors import ModelLoadError
from . import releases
from .files import CONFIGS_DIR, MAX_BLOCKS

log = logging.getLogger(__name__)

EXPERTS = ("high_noise", "low_noise")
PIPELINES = ("WanPipeline", "WanImageToVideoPipeline")
IMAGE_ENCODERS = ("CLIPVisionModel", "CLIPVisionModelWithProjection")


def is_wan_folder(folder) -> bool:
    """A diffusers folder whose pipeline or transformer class is a Wan one."""
    folder = Path(folder)
    for file in (folder / "model_index.json", folder / "transformer" / "config.json"):
        try:
            if json.loads(file.read_text()).get("_class_name", "").startswith("Wan"):
                return True
        except (OSError, ValueError):
            continue
    return False


def is_wan_file(path) -> bool:
    """Whether a single weights file belongs to the Wan ecosystem (a diffusion model, its VAE or UMT5). An unreadable
    file is not, here: the caller's own reader says what is wrong with it."""
    from .files import classify, file_keys

    try:
        return classify(file_keys(path)) in ("transformer", "transformer_clip", "transformer_i2v", "vae",
                                             "text_encoder")
    except ModelLoadError:
        return False


def load_wan_components(model_path, *, vae_path=None, text_encoder_path=None, tokenizer_dir=None,
                        expert: str = "high_noise", dtype: torch.dtype = torch.float32, clip_vision_path=None,
                        keep_fp8: bool = False) -> dict:
    """denoiser, vae, text_encoder, tokenizer, scheduler, image_encoder (None unless the model reads CLIP features;
    on the CPU, in ``dtype``) and ``model_info`` (arch, expert, boundary_ratio, first_frame, files, keep_fp8) from a
    Wan folder or single file; ``vae_path`` / ``text_encoder_path`` / ``tokenizer_dir`` are needed for a single file
    and override a folder's own parts, as ``clip_vision_path`` (models/clip_vision) does for Wan 2.1 I2V.
    ``keep_fp8``: a single file's fp8 Linear weights stay fp8 (single_file.load_transformer_file)."""
    if expert not in EXPERTS:
        raise ModelLoadError(f"expert must be one of {EXPERTS}, got {expert!r}.")
    model_path = Path(model_path)
    if not model_path.exists():
        raise ModelLoadError(f"{model_path} does not exist: pick a Wan diffusion model from models/diffusion_models "
                             "or a Wan diffusers folder.")
    if model_path.is_dir():
        parts = _folder_parts(model_path, expert, dtype, clip_vision_path)
    else:
        parts = _single_file_parts(model_path, vae_path, text_encoder_path, expert, dtype, clip_vision_path,
                                   keep_fp8)
    if vae_path is not None and model_path.is_dir():
        from .single_file import load_vae_file

        parts["vae"] = load_vae_file(vae_path, dtype)
    if text_encoder_path is not None and model_path.is_dir():
        from .text_encoder import load_text_encoder_file

        parts["text_encoder"], parts["spiece"] = load_text_encoder_file(text_encoder_path, dtype)
    if parts.get("tokenizer") is None or tokenizer_dir is not None:
        from .text_encoder import load_umt5_tokenizer

        parts["tokenizer"] = load_umt5_tokenizer(parts.get("spiece"), tokenizer_dir,
                                                 Path(text_encoder_path or model_path).name)
    parts.pop("spiece", None)
    _check_fit(parts, model_path)
    parts["model_info"]["files"] = [str(p) for p in (model_path, vae_path, text_encoder_path, clip_vision_path)
                                    if p is not None]
    parts["model_info"]["keep_fp8"] = bool(keep_fp8)  # the second A14B expert follows this choice (experts.py)
    return parts


def load_wan_backbone(model_path, *, vae_path=None, text_encoder_path=None, tokenizer_dir=None,
                      expert: str = "high_noise", dtype: torch.dtype = torch.float32, device="cpu",
                      load_both_experts: bool = False, other_expert_file=None, clip_vision_path=None,
                      keep_fp8: bool | None = None):
    """A WanBackbone, frozen, on ``device`` in ``dtype``; ``backbone.model_info`` says which model and expert.
    ``load_both_experts``: also load the A14B expert that is not ``denoiser`` (a folder's other transformer, or
    ``other_expert_file``; giving that file implies it), so sampling switches experts at the boundary.
    ``clip_vision_path``: the models/clip_vision file Wan 2.1 image-to-video needs (``backbone.image_encoder``).
    ``keep_fp8``: an fp8 file's Linear weights stay fp8 (True), are widened to ``dtype`` (False), or stay fp8 when
    ``device`` is CUDA (None: ComfyUI keeps fp8 files in fp8 there; on the CPU the widened model is the default)."""
    parts = load_wan_components(model_path, vae_path=vae_path, text_encoder_path=text_encoder_path,
                                tokenizer_dir=tokenizer_dir, expert=expert, dtype=dtype,
                                clip_vision_path=clip_vision_path,
                                keep_fp8=torch.device(device).type == "cuda" if keep_fp8 is None else keep_fp8)
    backbone = wan_backbone_from_parts(parts, dtype, device, str(model_path))
    if load_both_experts or other_expert_file is not None:
        from .experts import load_other_expert

        load_other_expert(backbone, other_expert_file)
    return backbone


def wan_backbone_from_parts(parts: dict, dtype: torch.dtype, device, source: str):
    """The WanBackbone around loaded parts (or the meta parts the memory plan builds before loading: preload.py)."""
    from ..base import move, ready
    from ..objectives import FlowMatchObjective
    from .backbone import WanBackbone

    info = parts.pop("model_info")
    backbone = ready(WanBackbone, parts["denoiser"], parts["vae"], parts["text_encoder"], parts["tokenizer"],
                     parts["scheduler"], dtype, device, source)
    backbone.model_info = info
    backbone.first_frame_conditioning = info.get("first_frame")
    if parts.get("image_encoder") is not None:
        backbone.image_encoder = move(parts["image_encoder"], device, dtype).requires_grad_(False).eval()
    if info.get("expert") and info.get("boundary_ratio"):
        # Each A14B expert trains only where it denoises: the high-noise one above the boundary (where motion forms).
        boundary = float(info["boundary_ratio"])
        backbone.objective = FlowMatchObjective(
            backbone.objective.shift, backbone.objective.num_train_timesteps,
            sigma_range=(boundary, 1.0) if info["expert"] == "high_noise" else (0.0, boundary))
    return backbone


def transformer_file_kind(path: Path, vae_path, text_encoder_path) -> str:
    """The kind of a Wan diffusion-model file (files.expect_kind), once its VAE and text encoder files are known to be
    given and to exist: what loading and the plan before loading check before anything large is read."""
    from .files import FOLDERS, expect_kind, file_keys

    kind = expect_kind(path, file_keys(path), "transformer")
    for given, part in ((vae_path, "vae"), (text_encoder_path, "text_encoder")):
        if given is None:
            what = {"vae": "VAE", "text_encoder": "text encoder"}[part]
            raise ModelLoadError(f"{path.name} is a Wan diffusion model only; it also needs its {what}: choose one "
                                 f"from {FOLDERS[part]}.")
        if not Path(given).is_file():
            raise ModelLoadError(f"{given} not found: choose the {part.replace('_', ' ')} from {FOLDERS[part]}.")
    return kind


def _single_file_parts(path: Path, vae_path, text_encoder_path, expert, dtype, clip_vision_path, keep_fp8) -> dict:
    from .single_file import load_transformer_file, load_vae_file
    from .text_encoder import load_text_encoder_file

    # The cheap checks first: nothing of a 14B file is read before every needed file is known to exist and to fit.
    kind = transformer_file_kind(path, vae_path, text_encoder_path)
    clip_config = _check_clip_vision_file(path, kind, clip_vision_path)
    denoiser, arch = load_transformer_file(path, dtype, keep_fp8=keep_fp8)
    vae = load_vae_file(vae_path, dtype)
    text_encoder, spiece = load_text_encoder_file(text_encoder_path, dtype)
    image_encoder = _clip_vision_part(path.name, denoiser.config, clip_vision_path, dtype, clip_config)
    scheduler, info = single_file_facts(path, arch, denoiser.config, expert)
    return dict(denoiser=denoiser, vae=vae, text_encoder=text_encoder, spiece=spiece, tokenizer=None,
                scheduler=scheduler, image_encoder=image_encoder, model_info=info)


def single_file_facts(path: Path, arch: str | None, config, expert: str) -> tuple:
    """(scheduler, model_info) of a diffusion-model file: what its architecture and name say (releases.py)."""
    from ..folders import load_scheduler
    from .experts import expert_from_name

    named = expert_from_name(path.name)
    # Only A14B files are named by expert; a size Wan-AI did not release (a test model, a pruned one) that is so
    # named is taken at its word.
    a14b = str(arch).endswith("_a14b_expert") or (arch is None and named is not None)
    scheduler = load_scheduler(CONFIGS_DIR / "wan_scheduler" / releases.single_file_scheduler(arch, path.name))
    info = {"arch": arch or "derived", "expert": (named or expert) if a14b else None,
            "boundary_ratio": releases.boundary_ratio(config) if a14b else None,
            "first_frame": releases.first_frame_conditioning(arch)}
    return scheduler, info


def _check_clip_vision_file(path: Path, kind: str, clip_vision_path) -> dict | None:
    """Before the transformer is read: does it need a CLIP vision file, is the given one a CLIP vision encoder, and
    are both as wide? Returns that file's config (None without one)."""
    from .clip_vision import check_pair, inspect_clip_vision_file
    from .files import header_shape

    check_pair(path.name, kind == "transformer_clip", clip_vision_path)
    if clip_vision_path is None:
        return None
    config = inspect_clip_vision_file(clip_vision_path)
    width = header_shape(path, "img_emb.proj.0.weight")  # the embedder's LayerNorm is as wide as what it reads
    if width:
        check_pair(path.name, width[0], clip_vision_path, config["hidden_size"])
    return config


def _clip_vision_part(name: str, config, clip_vision_path, dtype, clip_config=None):
    """The CLIP vision model a transformer reads (from ``clip_vision_path``), after its width is checked against the
    transformer's now-known config; None for a transformer that reads none."""
    from .clip_vision import check_pair, load_clip_vision_file

    image_dim = config.get("image_dim")
    check_pair(name, image_dim, clip_vision_path)
    if clip_vision_path is None:
        return None
    encoder = load_clip_vision_file(clip_vision_path, dtype, clip_config)
    check_pair(name, image_dim, clip_vision_path, encoder.config.hidden_size)
    return encoder


def _folder_parts(folder: Path, expert, dtype, clip_vision_path=None) -> dict:
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import UMT5EncoderModel

    from ..folders import from_pretrained_local, load_scheduler

    index, subfolder, config, two_experts, (clip_source, clip_detail) = folder_layout(folder, expert,
                                                                                      clip_vision_path)
    denoiser = from_pretrained_local(WanTransformer3DModel, folder, subfolder, dtype)
    vae = from_pretrained_local(AutoencoderKLWan, folder, "vae", dtype)
    text_encoder = _pretrained(UMT5EncoderModel, folder / "text_encoder", "UMT5 text encoder",
                               "config.json and its model*.safetensors", dtype=dtype)
    tokenizer = folder_tokenizer(folder)
    if clip_source == "folder":
        import transformers

        image_encoder = _pretrained(getattr(transformers, clip_detail), folder / "image_encoder",
                                    "CLIP vision encoder", "config.json and its model.safetensors", dtype=dtype)
    else:
        image_encoder = _clip_vision_part(folder.name, denoiser.config, clip_vision_path, dtype, clip_detail)
    return dict(denoiser=denoiser, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                scheduler=load_scheduler(folder / "scheduler"), image_encoder=image_encoder,
                model_info=folder_info(index, config, expert, two_experts))


def folder_layout(folder: Path, expert: str, clip_vision_path=None) -> tuple:
    """What a folder's JSON files say before any weight is read, each refusal made here: (model_index, the
    transformer's subfolder, its config, whether it holds two A14B experts, where its CLIP features come from)."""
    from ..folders import read_json

    index = read_json(folder / "model_index.json", "model_index.json of a WanPipeline folder")
    pipeline = index.get("_class_name", "WanPipeline")
    if pipeline not in PIPELINES:
        raise ModelLoadError(f"{folder} is a {pipeline} model (VACE, Animate or another task); motion LoRAs here "
                             "train Wan's text-to-video and image-to-video models (WanPipeline and "
                             "WanImageToVideoPipeline folders).")
    two_experts = (folder / "transformer_2" / "config.json").is_file()
    subfolder = "transformer_2" if two_experts and expert == "low_noise" else "transformer"
    config = read_json(folder / subfolder / "config.json", f"the Wan transformer config ({subfolder}/config.json)")
    _check_transformer_config(folder / subfolder / "config.json", config)
    return index, subfolder, config, two_experts, _folder_clip_source(folder, index, config, clip_vision_path)


def folder_tokenizer(folder: Path):
    """The folder's UMT5 tokenizer (small files, no weights), or None when it has none."""
    from transformers import AutoTokenizer

    if not (folder / "tokenizer").is_dir():
        return None
    return _pretrained(AutoTokenizer, folder / "tokenizer", "UMT5 tokenizer",
                       "tokenizer_config.json with spiece.model or tokenizer.json")


def folder_info(index: dict, config: dict, expert: str, two_experts: bool) -> dict:
    """A folder's model_info: which expert, where the A14B experts hand over, whether the image is the first frame."""
    boundary = index.get("boundary_ratio") or (releases.boundary_ratio(config) if two_experts else None)
    # diffusers' expand_timesteps: the first latent frame is the image, kept clean (Wan 2.2 TI2V 5B).
    first_frame = None if index.get("expand_timesteps") is None else bool(index["expand_timesteps"])
    return {"arch": "folder", "expert": expert if two_experts else None, "boundary_ratio": boundary,
            "first_frame": first_frame}


def _check_transformer_config(path: Path, config: dict) -> None:
    """A folder's transformer must be one we can condition: no first-last-frame position table, and a block count
    diffusers may build."""
    if config.get("pos_embed_seq_len") or config.get("_class_name", "WanTransformer3DModel") != "WanTransformer3DModel":
        raise ModelLoadError(f"{path.parent.parent} holds a Wan transformer for another task (first-last-frame, VACE "
                             "or Animate); motion LoRAs here train Wan's text-to-video and image-to-video models.")
    layers = config.get("num_layers", 0)
    if not isinstance(layers, int) or not 0 < layers <= MAX_BLOCKS:  # before diffusers builds that many blocks
        raise ModelLoadError(f"{path} asks for {layers!r} transformer blocks, where a Wan transformer has 1 to "
                             f"{MAX_BLOCKS}; the config is damaged. Re-download the folder.")


def _folder_clip_source(folder: Path, index: dict, config: dict, clip_vision_path) -> tuple[str | None, object]:
    """Where the CLIP features a folder's transformer reads come from, checked before any weight is read: ("file",
    its config) for ``clip_vision_path`` (it overrides the folder's own encoder), ("folder", the transformers class)
    for the folder's image_encoder/, (None, None) for a transformer that reads none."""
    from .clip_vision import CHOOSE, check_pair, inspect_clip_vision_file

    image_dim = config.get("image_dim")
    if clip_vision_path is not None or not image_dim:
        check_pair(folder.name, image_dim, clip_vision_path)
        if clip_vision_path is None:
            return None, None
        clip_config = inspect_clip_vision_file(clip_vision_path)
        check_pair(folder.name, image_dim, clip_vision_path, clip_config["hidden_size"])
        return "file", clip_config
    entry = index.get("image_encoder")
    class_name = entry[-1] if isinstance(entry, list) and entry else None
    if class_name is None or not (folder / "image_encoder" / "config.json").is_file():
        raise ModelLoadError(f"{folder}'s transformer reads CLIP vision features of the start image (Wan 2.1 "
                             f"image-to-video), but the folder has no image_encoder/: {CHOOSE} (clip_vision in Load "
                             "Video Model), or re-download the folder.")
    if class_name not in IMAGE_ENCODERS:
        raise ModelLoadError(f"{folder}'s image encoder is a {class_name!r}, where Wan 2.1 image-to-video reads a "
                             f"CLIP vision model: {CHOOSE}, or re-download the folder.")
    from ..folders import read_json

    encoder = read_json(folder / "image_encoder" / "config.json", "the CLIP vision encoder's config")
    layers = encoder.get("num_hidden_layers", 0)
    if not isinstance(layers, int) or not 0 < layers <= MAX_BLOCKS:
        raise ModelLoadError(f"{folder / 'image_encoder' / 'config.json'} asks for {layers!r} layers, where a CLIP "
                             f"vision encoder has 1 to {MAX_BLOCKS}; the config is damaged. Re-download the folder.")
    width = encoder.get("hidden_size")
    check_pair(folder.name, image_dim, folder / "image_encoder", width if isinstance(width, int) else None)
    return "folder", class_name


def _pretrained(cls, directory: Path, what: str, expected: str, *, dtype: torch.dtype | None = None):
    """``cls.from_pretrained`` on a part of a Wan folder (``expected``: the files it needs, in words): a model in
    ``dtype``, or a tokenizer (no dtype). The library's words go to the log; the user reads which folder, what is
    wrong and what to do. A model's weights are checked as _from_pretrained checks the transformer's."""
    from ..folders import LIBRARY_LOAD_ERRORS, check_loaded_finite, check_weight_files, pickle_refused

    if not directory.is_dir():
        raise ModelLoadError(f"{directory} is missing: a Wan diffusers folder needs its {what} there ({expected}). "
                             "Re-download the model folder.")
    is_model = dtype is not None
    if is_model and not (directory / "config.json").is_file():
        raise ModelLoadError(f"{directory} has no config.json, so its {what} cannot be built: the folder is "
                             f"incomplete (expected {expected}). Re-download that folder.")
    if is_model:
        check_weight_files(directory)  # a FIFO or a cut-off .safetensors is named before the library opens it
    try:
        if not is_model:
            return cls.from_pretrained(directory, local_files_only=True)
        loaded, info = cls.from_pretrained(directory, local_files_only=True, dtype=dtype, output_loading_info=True)
    except LIBRARY_LOAD_ERRORS as error:
        log.warning("loading the %s from %s failed: %s", what, directory, error)
        if isinstance(error, pickle.UnpicklingError):
            raise pickle_refused(directory) from error
        raise ModelLoadError(
            f"{directory} could not be loaded as the {what}: its files are missing, damaged, or do not match its "
            f"config (expected {expected}). Re-download that folder (ComfyUI's log has the loader's own message)."
        ) from error
    # transformers fills weights a file lacks with random values and only logs it: a text encoder of noise.
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        raise ModelLoadError(
            f"{directory} does not hold the {what} its config.json describes: {len(missing)} weights are missing "
            f"(e.g. {missing[:3]}), so the weights belong to another model or the download is incomplete. "
            "Re-download that folder."
        )
    return check_loaded_finite(loaded, directory)


def _check_fit(parts: dict, source: Path) -> None:
    """The three files must belong together: latent channels and text width are fixed per Wan generation (an
    image-to-video transformer's extra input channels are the image's latents and mask; its output is the noise's)."""
    config = parts["denoiser"].config
    z_dim = int(parts["vae"].config.z_dim)
    if z_dim != int(config.out_channels):
        right = "wan2.2_vae.safetensors" if int(config.out_channels) == 48 else "wan_2.1_vae.safetensors"
        raise ModelLoadError(f"The VAE makes {z_dim}-channel latents but {source.name} expects "
                             f"{config.out_channels}: use {right} from models/vae with this model.")
    width = int(parts["text_encoder"].config.d_model)
    if width != int(config.text_dim):
        raise ModelLoadError(f"The text encoder is {width} wide but {source.name} expects {config.text_dim}-wide text "
                             "states: use umt5_xxl_fp16.safetensors (or its fp8 version) from models/text_encoders.")
