"""Wan 2.2 A14B's two experts on one backbone, which of them owns a timestep, and which one a LoRA belongs to.

A14B is two transformers of one architecture: the high-noise expert denoises model timesteps t >= boundary_ratio ·
1000, the low-noise expert the rest (WanPipeline's ``transformer`` / ``transformer_2`` split, same comparison). The
backbone keeps the expert it was loaded with as ``denoiser``: that is the one a recipe trains (by default the
high-noise one, where motion forms). The other expert is loaded only when asked, because sampling needs it and
training does not, and a 14B expert is 28 GB in bf16.

A LoRA belongs to one expert: its metadata says which (``extra.wan_expert``, written when a LoRA trained on an expert
is tagged), else its file name does (``*_high_noise.safetensors``, the way ComfyUI's repackaged Wan 2.2 LoRAs,
ai-toolkit and musubi-tuner users name them); a LoRA that says neither goes with the expert the model was loaded
with, which is what sampling did before the second expert existed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from ...errors import ModelLoadError

HIGH_NOISE, LOW_NOISE = "high_noise", "low_noise"
EXPERTS = (HIGH_NOISE, LOW_NOISE)
METADATA_KEY = "wan_expert"
"""Where a LoRA records its expert (an ``extra`` field of the LoRA header, so older readers keep working)."""

# "high_noise", "HighNoise", "high-noise": the spellings Wan 2.2 files circulate under.
_NAMED = re.compile(r"(?<![a-z])(high|low)[ _-]?noise(?![a-z])", re.IGNORECASE)


def expert_from_name(name) -> str | None:
    """The expert a file or LoRA name says it is for ("high_noise" / "low_noise"), None when it names neither or
    both."""
    found = {m.group(1).lower() + "_noise" for m in _NAMED.finditer(Path(str(name)).name)}
    return found.pop() if len(found) == 1 else None


def expert_file_name(stem: str, expert: str | None) -> str:
    """``<stem>_<expert>.safetensors`` (the suffix last, as ComfyUI's and ai-toolkit's Wan 2.2 LoRAs end), or
    ``<stem>.safetensors`` for a LoRA of a one-transformer model."""
    return f"{stem}_{expert}.safetensors" if expert else f"{stem}.safetensors"


def lora_expert(lora) -> str | None:
    """The expert a MotionLora records, else the one its name says, else None."""
    recorded = (lora.metadata.get("extra") or {}).get(METADATA_KEY)
    if recorded in EXPERTS:
        return recorded
    return expert_from_name(lora.name or "")


def tag_lora(lora, expert: str | None):
    """``lora`` recording ``expert`` (unchanged when it already does, or when there is no expert to record)."""
    if expert is None or (lora.metadata.get("extra") or {}).get(METADATA_KEY) == expert:
        return lora
    if expert not in EXPERTS:
        raise ValueError(f"expert must be one of {EXPERTS}; got {expert!r}")
    return lora.with_metadata(**{METADATA_KEY: expert})


def loaded_expert(backbone) -> str | None:
    """The expert ``backbone.denoiser`` is (None for every model but a Wan 2.2 A14B expert)."""
    return (getattr(backbone, "model_info", None) or {}).get("expert")


@dataclass
class WanExperts:
    """Both A14B experts of a backbone. ``primary``: the expert that is the backbone's ``denoiser``."""

    high_noise: nn.Module
    low_noise: nn.Module
    boundary_ratio: float
    primary: str

    def module(self, expert: str) -> nn.Module:
        return self.high_noise if expert == HIGH_NOISE else self.low_noise

    def expert_at(self, timestep, num_train_timesteps: int = 1000) -> str:
        """Who denoises model timestep ``timestep``: the high-noise expert at and above the boundary, as
        WanPipeline (``t >= boundary_ratio * num_train_timesteps``)."""
        t = float(torch.as_tensor(timestep, dtype=torch.float64).reshape(-1)[0])
        return HIGH_NOISE if t >= self.boundary_ratio * num_train_timesteps else LOW_NOISE

    def modules(self) -> tuple[nn.Module, nn.Module]:
        return self.high_noise, self.low_noise


def experts_of(backbone) -> WanExperts | None:
    """The backbone's two experts, or None when it holds one denoiser (then sampling runs it for every step)."""
    return getattr(backbone, "experts", None)


def expert_denoisers(backbone) -> dict[str | None, nn.Module]:
    """Expert name -> the module that runs it ({None: denoiser} for a one-denoiser model). The loaded expert is
    whatever ``backbone.denoiser`` is now, so a wrapper a trainer put there is what samples."""
    experts = experts_of(backbone)
    if experts is None:
        return {None: backbone.denoiser}
    other = _other(experts.primary)
    return {experts.primary: backbone.denoiser, other: experts.module(other)}


def attach_experts(backbone, other: nn.Module) -> WanExperts:
    """Make ``other`` (a transformer of the same architecture, already loaded) the backbone's second expert: frozen,
    in eval mode, on the backbone's device and dtype. The backbone's ``denoiser`` stays the expert it was."""
    primary, boundary = _expert_and_boundary(backbone)
    _check_same_architecture(backbone.denoiser, other)
    from ..base import move

    move(other, backbone.device, backbone.dtype).requires_grad_(False).eval()
    pair = {primary: backbone.denoiser, _other(primary): other}
    experts = WanExperts(pair[HIGH_NOISE], pair[LOW_NOISE], float(boundary), primary)
    backbone.experts = experts
    return experts


def load_other_expert(backbone, file=None) -> WanExperts:
    """Load the expert the backbone lacks and attach it: from ``file`` (a models/diffusion_models file, its name
    saying the other expert or nothing; its fp8 weights kept as stored if the backbone's were, model_info
    ``keep_fp8``), or for a diffusers folder from its other transformer subfolder."""
    primary, _ = _expert_and_boundary(backbone)  # refused before anything is read
    wanted = _other(primary)
    if file is not None:
        if expert_from_name(file) == primary:
            raise ModelLoadError(
                f"{Path(file).name} is the {primary.replace('_', '-')} expert, the same as the model already loaded. "
                f"Pick the {wanted.replace('_', '-')} file (its name has '{wanted}') as the second expert.")
        from .single_file import load_transformer_file

        keep_fp8 = bool((getattr(backbone, "model_info", None) or {}).get("keep_fp8"))
        other, _arch = load_transformer_file(file, backbone.dtype, keep_fp8=keep_fp8)
        return attach_experts(backbone, other)
    source = Path(backbone.source)
    if not source.is_dir():
        raise ModelLoadError(
            f"{source.name} is a single file: pick the other expert's file (its name has "
            f"'{wanted}') from models/diffusion_models as the second expert.")
    subfolder = "transformer_2" if wanted == LOW_NOISE else "transformer"
    if not (source / subfolder / "config.json").is_file():
        raise ModelLoadError(f"{source} has no {subfolder}/ folder, so it holds one Wan transformer; the second "
                             "expert needs a Wan 2.2 A14B folder (transformer/ and transformer_2/).")
    from diffusers import WanTransformer3DModel

    from ..folders import from_pretrained_local

    return attach_experts(backbone, from_pretrained_local(WanTransformer3DModel, source, subfolder, backbone.dtype))


def _expert_and_boundary(backbone) -> tuple[str, float]:
    info = getattr(backbone, "model_info", None) or {}
    expert, boundary = info.get("expert"), info.get("boundary_ratio")
    if expert not in EXPERTS or not boundary:
        raise ModelLoadError(
            f"{Path(str(backbone.source)).name} is not a Wan 2.2 A14B expert, so there is no second expert to load. "
            "Two experts come as a *_high_noise_* and a *_low_noise_* diffusion-model file, or as a diffusers folder "
            "with transformer/ and transformer_2/.")
    return expert, float(boundary)


def _other(expert: str) -> str:
    return LOW_NOISE if expert == HIGH_NOISE else HIGH_NOISE


def _check_same_architecture(first: nn.Module, second: nn.Module) -> None:
    """Both experts must have one layout: a LoRA stack is checked against one and merged into either."""
    keys = ("num_attention_heads", "attention_head_dim", "num_layers", "in_channels", "out_channels", "ffn_dim",
            "text_dim", "patch_size")
    a = {k: getattr(getattr(first, "config", None), k, None) for k in keys}
    b = {k: getattr(getattr(second, "config", None), k, None) for k in keys}
    if a != b:
        differ = ", ".join(f"{k} {a[k]} vs {b[k]}" for k in keys if a[k] != b[k])
        raise ModelLoadError(f"The two Wan experts differ ({differ}): pick the high-noise and low-noise files of one "
                             "Wan 2.2 A14B release.")
