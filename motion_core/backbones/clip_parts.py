"""The text side of the CLIP-conditioned UNet families (ModelScope/ZeroScope, AnimateDiff): the CLIP text encoder
and tokenizer of a diffusers folder, and the assembly of a folder's shared parts around a family's denoiser."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..errors import ModelLoadError
from .base import ready
from .folders import LIBRARY_LOAD_ERRORS, check_loaded_finite, check_weight_files, folder_error, from_pretrained_local

log = logging.getLogger(__name__)


def assemble(cls, folder, unet, scheduler, dtype, device, tokenizer_dir):
    from diffusers import AutoencoderKL

    vae = from_pretrained_local(AutoencoderKL, folder, "vae", dtype)
    text_encoder = load_text_encoder(folder / "text_encoder", dtype)
    tokenizer = load_tokenizer(folder / "tokenizer", tokenizer_dir)
    return ready(cls, unet, vae, text_encoder, tokenizer, scheduler, dtype, device, str(folder))


def assemble_on_meta(cls, folder, unet, scheduler, dtype, tokenizer_dir):
    """``assemble`` before loading: the VAE and CLIP text encoder built on the meta device from their config.json
    (from_pretrained casts every tensor to ``dtype``, as ``ready`` does here), the tokenizer read (small files)."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel

    from .folders import read_json

    folder = Path(folder)
    vae_config = read_json(folder / "vae" / "config.json", "the VAE's config (vae/config.json)")
    text_directory = folder / "text_encoder"
    if not (text_directory / "config.json").is_file():
        raise ModelLoadError(f"{text_directory} is missing or has no config.json: the model folder needs its CLIP "
                             "text_encoder.")
    text_config = CLIPTextConfig.from_pretrained(text_directory, local_files_only=True)
    with torch.device("meta"):
        vae = AutoencoderKL.from_config(vae_config)
        text_encoder = CLIPTextModel(text_config)
    tokenizer = load_tokenizer(folder / "tokenizer", tokenizer_dir)
    return ready(cls, unet, vae, text_encoder, tokenizer, scheduler, dtype, "meta", str(folder))


def load_text_encoder(directory: Path, dtype):
    from transformers import CLIPTextModel

    if not (directory / "config.json").is_file():
        raise ModelLoadError(f"{directory} is missing or has no config.json: the model folder needs its CLIP "
                             "text_encoder.")
    check_weight_files(directory)
    try:
        model = CLIPTextModel.from_pretrained(directory, dtype=dtype, local_files_only=True)
    except LIBRARY_LOAD_ERRORS as error:
        raise folder_error(directory, "CLIP text encoder", error) from error
    return check_loaded_finite(model, directory)


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
