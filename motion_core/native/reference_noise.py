"""The reference clip's noise prior as the starting noise of a native flow sampler (ComfyUI's NOISE).

Why a NOISE and not a LATENT: for flow models core starts from ``sigma · noise + (1 − sigma) · latent``
(model_sampling CONST.noise_scaling). At a full denoise sigma starts at 1, so the latent is multiplied by 0 and
only the noise survives: a prior handed over as a LATENT (with noise disabled) would be erased. As the noise it
becomes the start exactly: x_T = 1 · start, in the normalised latent space the denoiser sees, which is the space
our sampler blends in too (core's Wan latent format normalises before sampling, and skips that for an all-zero
empty latent).

What the start is: Sample Video's, built from the same pieces. The fresh part is ``torch.manual_seed(seed)`` normal
noise over the latent's shape on the CPU, which is both what core's RandomNoise draws and what our sampler draws;
the reference part is the flow-ODE inversion of the clip (noise_prior.flow_invert) climbing the levels of an Euler
schedule with the graph's shift, which are the sigmas of core's ``normal`` scheduler for that shift; ``blend_prior``
mixes them by p in "full" or "motion" mode. So SamplerCustomAdvanced with this noise, an empty latent, euler and
the normal scheduler samples what Sample Video samples with the euler scheduler.

The video size comes from the latent the sampler is given, so the user sets it once (on the empty-latent node).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import torch

from ..errors import InvalidInputError
from ..sampling.noise_prior import NOISE_PRIOR_MODES, blend_prior, check_noise_prior_mode, invert, prepare_reference
from ..sampling.schedulers import make_scheduler
from .lora_entries import NATIVE_FAMILIES


@dataclass(frozen=True)
class ReferenceNoisePlan:
    """What a Reference Noise node was asked for. shift 0 means the loaded model's own shift."""

    p: float = 1.0
    mode: str = "full"
    seed: int = 0
    steps: int = 20
    shift: float = 0.0

    def __post_init__(self):
        if not (math.isfinite(float(self.p)) and 0.0 <= float(self.p) <= 1.0):
            raise InvalidInputError(f"noise_prior_p must be between 0 and 1; got {self.p}.")
        check_noise_prior_mode(self.mode)
        if int(self.steps) < 1:
            raise InvalidInputError(f"steps must be at least 1; got {self.steps}.")
        if not (math.isfinite(float(self.shift)) and float(self.shift) >= 0.0):
            raise InvalidInputError(f"shift must be 0 (the model's own) or positive; got {self.shift}.")


def check_native_flow(backbone) -> None:
    family = getattr(backbone, "family", "?")
    if family not in NATIVE_FAMILIES or backbone.objective.kind != "flow":
        raise InvalidInputError(
            f"Reference Noise (native) makes the starting noise of ComfyUI's native flow samplers, for "
            f"{', '.join(NATIVE_FAMILIES)} models; this video model is {family}. Use Sample Video's noise prior "
            "for it instead.")


def latent_geometry(backbone, latent_shape) -> tuple[int, int, int]:
    """(frames, height, width) in pixels of the video whose latent has ``latent_shape`` [B, C, F, h, w]."""
    shape = tuple(int(s) for s in latent_shape)
    channels = int(backbone.latent_channels)
    if len(shape) != 5 or shape[1] != channels:
        raise InvalidInputError(
            f"The latent {list(shape)} is not a video latent of this model ([batch, {channels}, frames, height, "
            "width]); connect an empty Wan video latent (e.g. EmptyHunyuanLatentVideo) made for this model.")
    compression = int(getattr(backbone, "temporal_compression", 1))
    frames = shape[2] if compression == 1 else 1 + (shape[2] - 1) * compression
    scale = int(backbone.vae_scale_factor)
    return frames, shape[3] * scale, shape[4] * scale


def inversion_timesteps(backbone, plan: ReferenceNoisePlan) -> torch.Tensor:
    """Model timesteps (1000·sigma, descending from 1000) the inversion climbs: an Euler flow schedule of
    ``plan.steps`` steps with the plan's shift."""
    objective = backbone.objective
    shift = float(plan.shift) or float(objective.shift)
    flow = SimpleNamespace(kind="flow", shift=shift, num_train_timesteps=objective.num_train_timesteps)
    scheduler = make_scheduler("euler", backbone.scheduler.config, flow)
    scheduler.set_timesteps(int(plan.steps), device=backbone.device)
    return scheduler.timesteps


@torch.no_grad()
def reference_inversion(backbone, clip, latent_shape, plan: ReferenceNoisePlan, callbacks=None) -> torch.Tensor:
    """The clip inverted to sigma 1 at the latent's size: float32 [1, C, F, h, w] on the CPU. Runs the denoiser
    once per step, with an empty prompt and no LoRA (the prior describes the clip as the base model sees it)."""
    check_native_flow(backbone)
    frames, height, width = latent_geometry(backbone, latent_shape)
    denoiser = backbone.denoiser
    was_training = denoiser.training
    denoiser.eval()
    try:
        reference = prepare_reference(clip, frames, height, width)
        clean = backbone.encode_video(reference).float()
        inverted = invert(backbone, clean, inversion_timesteps(backbone, plan),
                          text_states=backbone.encode_prompt([""]), callbacks=callbacks)
    finally:
        denoiser.train(was_training)
    if not bool(torch.isfinite(inverted).all()):
        raise InvalidInputError("The inverted reference clip became NaN or infinite; load the video model in bf16 "
                                "or fp32, or check the model file.")
    return inverted.float().cpu()


def reference_start(inverted: torch.Tensor, noise: torch.Tensor, plan: ReferenceNoisePlan) -> torch.Tensor:
    """The start latents for a batch of fresh ``noise`` (each batch item gets the same reference part)."""
    noise = noise.float()
    if tuple(inverted.shape[1:]) != tuple(noise.shape[1:]):
        raise InvalidInputError(f"The inverted reference {list(inverted.shape)} does not match the noise "
                                f"{list(noise.shape)}.")
    start = blend_prior(inverted.to(noise.device), float(plan.p), noise, plan.mode)
    return start.expand_as(noise).contiguous()


__all__ = ["NOISE_PRIOR_MODES", "ReferenceNoisePlan", "latent_geometry", "reference_inversion", "reference_start"]
