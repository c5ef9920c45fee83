"""Local-only loading of backbones from a diffusers folder or a single-file SD1.5 checkpoint plus a motion module.

Nothing here touches the network: every from_pretrained call is local_files_only, and configs that diffusers would
fetch from the hub for single-file checkpoints ship in ``configs/`` (see configs/README.md). Pickled files are only
read through ``torch.load(weights_only=True)``, which refuses anything but tensors and plain containers. Every
failure is a ModelLoadError that says what was expected where.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import torch

from ..errors import ModelLoadError
from .base import Backbone, move
from .motion_module import (
    CONFIGS_DIR,
    all_finite,
    check_finite,
    load_motion_adapter,
    read_state_dict,
    require_regular_file,
    shape_mismatch,
)
from .wan_loading import is_wan_file, is_wan_folder, load_wan_backbone

__all__ = ["load_backbone", "detect_family", "CONFIGS_DIR"]

log = logging.getLogger(__name__)

UNET_FAMILIES = {"UNet3DConditionModel": "unet3d", "UNetMotionModel": "animatediff",
                 "UNet2DConditionModel": "animatediff"}
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth")
_NOT_A_MODEL = ("pick a diffusers folder like zeroscope_v2_576w or text-to-video-ms-1.7b, or a Stable Diffusion 1.5 "
                ".safetensors checkpoint together with an AnimateDiff motion module")


def load_backbone(path, *, dtype: torch.dtype = torch.float32, device="cpu", motion_module=None,
                  tokenizer_dir=None, vae=None, text_encoder=None, expert: str = "high_noise") -> Backbone:
    """Load a model from disk and return its Backbone, on ``device`` in ``dtype``, all weights frozen.

    path: a diffusers folder (ModelScope/ZeroScope TextToVideoSDPipeline, AnimateDiffPipeline, or an SD1.5
    StableDiffusionPipeline folder used with ``motion_module``), or an SD1.5 single-file checkpoint.
    motion_module: an AnimateDiff motion module file (v1/v2/v3 .ckpt/.safetensors) or diffusers MotionAdapter folder;
    required for SD1.5 models, overrides a folder's own motion_adapter. tokenizer_dir: a CLIP tokenizer folder
    (vocab.json + merges.txt, or tokenizer.json; e.g. ComfyUI's comfy/sd1_tokenizer) used when the model has none.
    Wan 2.1 / 2.2 (a WanPipeline folder, or a models/diffusion_models file with ``vae`` and ``text_encoder`` files
    from models/vae and models/text_encoders) is handed to wan_loading; ``expert`` picks a Wan 2.2 A14B expert
    ("high_noise", where motion forms, or "low_noise"), each trained only on its own side of the boundary.
    """
    path = Path(path)
    kind = _kind_on_disk(path)
    if kind is None:
        raise ModelLoadError(f"{path} does not exist: {_NOT_A_MODEL}.")
    if kind == "other":  # a FIFO or device: opening it would block or never end, so nothing here opens it
        raise ModelLoadError(f"{path.name} is not a regular file (a pipe, socket or device): {_NOT_A_MODEL}.")
    # ComfyUI's Wan files are all .safetensors, whose header names the tensors without reading them.
    if path.is_dir() and is_wan_folder(path) or path.suffix.lower() == ".safetensors" and is_wan_file(path):
        return load_wan_backbone(path, vae_path=vae, text_encoder_path=text_encoder, tokenizer_dir=tokenizer_dir,
                                 expert=expert, dtype=dtype, device=device)
    if path.is_dir():
        family = detect_family(path)
        if family == "unet3d":
            return _load_unet3d_folder(path, dtype, device, tokenizer_dir)
        return _load_animatediff_folder(path, dtype, device, motion_module, tokenizer_dir)
    if path.suffix.lower() in SINGLE_FILE_SUFFIXES:
        from .single_file import load_sd15_single_file

        return load_sd15_single_file(path, dtype=dtype, device=device, motion_module=motion_module,
                                     tokenizer_dir=tokenizer_dir)
    raise ModelLoadError(f"{path.name} is not a model file (expected .safetensors or .ckpt): {_NOT_A_MODEL}.")


def _kind_on_disk(path: Path) -> str | None:
    """"dir", "file" (regular, links followed), "other" (FIFO, socket, device) or None when absent or unnameable."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        return None
    return "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


def detect_family(folder) -> str:
    """The backbone family of a diffusers folder, from its unet's config class name ("unet3d" or "animatediff"),
    or "wan" for a WanPipeline folder."""
    folder = Path(folder)
    if is_wan_folder(folder):
        return "wan"
    if not (folder / "model_index.json").is_file():
        raise ModelLoadError(f"model_index.json not found in {folder}: {_NOT_A_MODEL}.")
    config = _read_json(folder / "unet" / "config.json", "the denoiser's config (unet/config.json)")
    class_name = config.get("_class_name", "")
    if class_name not in UNET_FAMILIES:
        raise ModelLoadError(
            f"{folder} holds a {class_name or 'unknown'} denoiser; supported are UNet3DConditionModel "
            "(ModelScope/ZeroScope) and SD1.5 UNets with an AnimateDiff motion module."
        )
    # SD2 (1024-wide text) and SDXL (added time embedding) UNets would accept SD1.5 motion modules shape-wise and
    # then produce noise, so they are refused by name here.
    if class_name == "UNet2DConditionModel" and (config.get("cross_attention_dim") in (1024, 2048)
                                                 or config.get("addition_embed_type")):
        raise ModelLoadError(
            f"{folder} is a Stable Diffusion 2 or SDXL model; AnimateDiff here works with SD1.5 models only."
        )
    return UNET_FAMILIES[class_name]


def _load_unet3d_folder(folder, dtype, device, tokenizer_dir):
    from diffusers import UNet3DConditionModel

    from .unet3d import UNet3DBackbone

    unet = _from_pretrained(UNet3DConditionModel, folder, "unet", dtype)
    return _assemble(UNet3DBackbone, folder, unet, _load_scheduler(folder / "scheduler"), dtype, device,
                     tokenizer_dir)


def _load_animatediff_folder(folder, dtype, device, motion_module, tokenizer_dir):
    from diffusers import UNet2DConditionModel, UNetMotionModel

    from .animatediff import AnimateDiffBackbone

    unet_class = _read_json(folder / "unet" / "config.json", "unet/config.json")["_class_name"]
    if unet_class == "UNetMotionModel" and motion_module is None:
        unet = _from_pretrained(UNetMotionModel, folder, "unet", dtype)
    else:
        if unet_class == "UNetMotionModel":
            raise ModelLoadError(
                f"{folder} already contains a motion module (its unet is a UNetMotionModel); leave motion_module "
                "empty, or pick the plain SD1.5 folder to use another motion module."
            )
        if motion_module is None and not (folder / "motion_adapter").is_dir():
            raise ModelLoadError(
                f"{folder} is a Stable Diffusion 1.5 model without a motion module: choose an AnimateDiff motion "
                "module (e.g. v3_sd15_mm.ckpt or mm_sd_v15_v2.ckpt from models/animatediff_models) as motion_module."
            )
        unet2d = _from_pretrained(UNet2DConditionModel, folder, "unet", dtype)
        source = Path(motion_module or folder / "motion_adapter")
        if source.is_dir():
            check_weight_files(source)
        adapter = load_motion_adapter(source, unet2d.config, dtype)
        if source.is_dir():  # a file's tensors were checked as they were read
            check_loaded_finite(adapter, source)
        unet = combine_unet_and_motion_adapter(unet2d, adapter)
    # Motion modules were trained with linear betas; an SD folder's own scheduler (scaled_linear PNDM) would give
    # them the wrong noise levels, so only an AnimateDiff pipeline folder's scheduler is trusted.
    index = _read_json(folder / "model_index.json", "model_index.json")
    scheduler_dir = folder / "scheduler" if index.get("_class_name", "").startswith("AnimateDiff") else None
    scheduler = _load_scheduler(scheduler_dir or CONFIGS_DIR / "animatediff" / "scheduler")
    return _assemble(AnimateDiffBackbone, folder, unet, scheduler, dtype, device, tokenizer_dir)


def combine_unet_and_motion_adapter(unet2d, adapter):
    """UNetMotionModel from an SD1.5 UNet and a MotionAdapter without a random-init pass over ~1.3B parameters:
    the architecture is built on the meta device, then both state dicts (whose keys UNetMotionModel shares
    verbatim) are assigned; the sinusoidal frame-position tables, when absent from the adapter, are recomputed."""
    from diffusers import UNetMotionModel

    source = adapter.config.get("_name_or_path")
    name = Path(str(source)).name if source else "The motion module"
    fix = ("Pick a motion module made for this model: SD1.5 models take mm_sd_v14/v15, mm_sd_v15_v2 or v3_sd15_mm "
           "(models/animatediff_models), not an SDXL (mm_sdxl, HotShot-XL) or SD2 one.")
    try:
        with torch.device("meta"):
            unet = UNetMotionModel.from_unet2d(unet2d, adapter, load_weights=False)
    except ValueError as error:
        log.warning("UNetMotionModel.from_unet2d refused %s: %s", name, error)
        unet_blocks, adapter_blocks = len(unet2d.config.down_block_types), len(adapter.config.block_out_channels)
        raise ModelLoadError(
            f"{name} does not fit this UNet: it has {adapter_blocks} blocks of "
            f"{adapter.config.motion_layers_per_block} motion layers, the UNet {unet_blocks} blocks of "
            f"{unet2d.config.layers_per_block} layers. {fix}"
        ) from error
    weights = {**unet2d.state_dict(), **{k: v for k, v in adapter.state_dict().items() if not k.startswith("conv_in")}}
    mismatch = shape_mismatch(unet, weights)
    if mismatch:
        raise ModelLoadError(f"{name} does not fit this UNet: {mismatch}. {fix}")
    result = unet.load_state_dict(weights, strict=False, assign=True)
    if result.unexpected_keys:
        raise ModelLoadError(
            f"{name} does not fit this UNet: it has weights the UNet has no place for, such as "
            f"{result.unexpected_keys[:5]}. {fix}"
        )
    restore_position_tables(unet)
    missing = [n for n, t in [*unet.named_parameters(), *unet.named_buffers()] if t.is_meta]
    if missing:
        raise ModelLoadError(f"The UNet or {name} is incomplete; missing weights such as {missing[:5]}. Re-download "
                             "the model and the motion module.")
    return move(unet, dtype=next(unet2d.parameters()).dtype)


def restore_position_tables(module: torch.nn.Module) -> None:
    """Recompute diffusers' SinusoidalPositionalEmbedding tables left on the meta device (they are fixed functions
    of their shape, and original AnimateDiff checkpoints converted by diffusers drop them)."""
    from diffusers.models.embeddings import SinusoidalPositionalEmbedding

    for sub in module.modules():
        if isinstance(sub, SinusoidalPositionalEmbedding) and sub.pe.is_meta:
            _, length, dim = sub.pe.shape
            sub.pe = SinusoidalPositionalEmbedding(dim, length).pe


def _assemble(cls, folder, unet, scheduler, dtype, device, tokenizer_dir):
    from diffusers import AutoencoderKL

    vae = _from_pretrained(AutoencoderKL, folder, "vae", dtype)
    text_encoder = load_text_encoder(folder / "text_encoder", dtype)
    tokenizer = load_tokenizer(folder / "tokenizer", tokenizer_dir)
    return ready(cls, unet, vae, text_encoder, tokenizer, scheduler, dtype, device, str(folder))


def ready(cls, unet, vae, text_encoder, tokenizer, scheduler, dtype, device, source):
    """Move to device/dtype, freeze everything (adapters add the trainable weights), wrap in ``cls``."""
    for module in (unet, vae, text_encoder):
        move(module, device, dtype).requires_grad_(False)
    vae.eval()
    text_encoder.eval()
    return cls(denoiser=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
               device=device, dtype=dtype, source=source)


def _from_pretrained(model_class, folder, subfolder, dtype):
    if not (folder / subfolder / "config.json").is_file():
        raise ModelLoadError(f"{folder / subfolder} is missing or has no config.json: the model folder is incomplete "
                             f"(expected subfolders unet, vae, text_encoder, tokenizer, scheduler).")
    check_weight_files(folder / subfolder)
    try:
        model = model_class.from_pretrained(folder, subfolder=subfolder, torch_dtype=dtype, local_files_only=True)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as error:
        raise _folder_error(folder / subfolder, model_class.__name__, error) from error
    return check_loaded_finite(model, folder / subfolder)


def load_text_encoder(directory: Path, dtype):
    from transformers import CLIPTextModel

    if not (directory / "config.json").is_file():
        raise ModelLoadError(f"{directory} is missing or has no config.json: the model folder needs its CLIP "
                             "text_encoder.")
    check_weight_files(directory)
    try:
        model = CLIPTextModel.from_pretrained(directory, dtype=dtype, local_files_only=True)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as error:
        raise _folder_error(directory, "CLIP text encoder", error) from error
    return check_loaded_finite(model, directory)


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth")


def check_weight_files(directory: Path) -> None:
    """Before a library opens a folder's weights: every weights file must be a regular file (a FIFO would block the
    load forever) and every .safetensors file complete (a cut-off download is named, not a library message)."""
    from .wan_files import safetensors_header

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


def _folder_error(directory: Path, what: str, error: Exception) -> ModelLoadError:
    """The library's words go to the log; the user reads what is wrong where and what to do."""
    log.warning("loading %s from %s failed: %s", what, directory, error)
    return ModelLoadError(
        f"{directory} could not be loaded as a {what}: its weights are missing, damaged, or do not match its "
        "config.json. Re-download that folder (ComfyUI's log has the loader's own message)."
    )


def load_tokenizer(directory: Path | None, fallback_dir=None):
    """A CLIP tokenizer from the model's own folder or, failing that, from ``fallback_dir``."""
    from transformers import CLIPTokenizer

    for candidate in (directory, fallback_dir):
        if candidate is None:
            continue
        candidate = Path(candidate)
        if (candidate / "tokenizer.json").is_file() or ((candidate / "vocab.json").is_file()
                                                         and (candidate / "merges.txt").is_file()):
            try:
                return CLIPTokenizer.from_pretrained(candidate, local_files_only=True)
            except (OSError, ValueError, KeyError, TypeError) as error:
                log.warning("CLIPTokenizer.from_pretrained(%s) failed: %s", candidate, error)
                raise ModelLoadError(
                    f"{candidate} could not be read as a CLIP tokenizer: its vocab.json, merges.txt or "
                    "tokenizer.json is damaged or of another tokenizer. Re-download that folder (ComfyUI's log has "
                    "the loader's own message)."
                ) from error
    raise ModelLoadError(
        f"No CLIP tokenizer found (looked in {directory} and {fallback_dir}): a tokenizer folder needs vocab.json and "
        "merges.txt (or tokenizer.json). Point tokenizer_dir at ComfyUI's comfy/sd1_tokenizer folder."
    )


def _load_scheduler(directory: Path):
    import diffusers
    from diffusers import SchedulerMixin

    config = _read_json(directory / "scheduler_config.json", "the noise schedule (scheduler/scheduler_config.json)")
    scheduler_class = getattr(diffusers, str(config.get("_class_name", "")), None)
    if not (isinstance(scheduler_class, type) and issubclass(scheduler_class, SchedulerMixin)):
        raise ModelLoadError(f"{directory} names an unknown scheduler {config.get('_class_name')!r}.")
    return scheduler_class.from_config(config)


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ModelLoadError(f"{path} not found: expected {what} there ({_NOT_A_MODEL}).")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        log.warning("reading %s failed: %s", path, error)
        raise ModelLoadError(f"{path} is not readable JSON (it is damaged, cut off or another kind of file): "
                             f"expected {what} there; re-download that file.") from error


__all__ += ["combine_unet_and_motion_adapter", "load_tokenizer", "load_text_encoder", "read_state_dict", "ready"]
