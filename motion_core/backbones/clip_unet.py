"""What the UNet video families share: a per-frame image VAE (AutoencoderKL) and a CLIP text encoder.

ModelScope/ZeroScope and AnimateDiff both encode each frame independently with a Stable-Diffusion-style VAE and
condition on CLIP's last hidden state; they differ only in the denoiser. Keeping the shared half here means a new
UNet family (e.g. a LaVie-like model) writes only its denoiser call and its target patterns.
"""

from __future__ import annotations

import warnings
from abc import abstractmethod
from typing import Sequence

import torch

from ..errors import InvalidInputError
from . import checkpointing
from .base import VAE_FRAMES_PER_CALL, Backbone, PlanningShapes, as_batched_frames, cut_prompt_message, denoise_inputs


class ClipUNetBackbone(Backbone):
    """A Backbone whose VAE is a 2D AutoencoderKL applied frame by frame and whose text encoder is CLIP."""

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    # ---- memory planning ----------------------------------------------------------------------------------------
    def planning_shapes(self, frames: int, height: int, width: int):
        """Latents [1, C, F, H/s, W/s] (one latent frame per frame), CLIP states [1, 77, cross-attention width];
        tokens: the latent pixels of all frames, the widest level's attention length. Without a VAE (a denoiser-only
        backbone) the SD VAE's factor 8 and the denoiser's input channels are used."""
        config = self.denoiser.config
        s = self.vae_scale_factor if self.vae is not None else 8
        channels = int(config.in_channels)
        length = 77
        if self.tokenizer is not None and self.text_encoder is not None:
            length = min(int(self.tokenizer.model_max_length),
                         int(self.text_encoder.config.max_position_embeddings))
        h, w = int(height) // s, int(width) // s
        return PlanningShapes(latents=(1, channels, int(frames), h, w),
                              text_states=(1, length, int(config.cross_attention_dim)), tokens=int(frames) * h * w)

    # ---- video <-> latents ----------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_video(self, frames, *, sample_posterior=False, generator=None):
        video = as_batched_frames(frames)
        b, f, h, w, _ = video.shape
        s = self.vae_scale_factor
        if h % s or w % s:
            raise InvalidInputError(
                f"Frame size {w}x{h} is not a multiple of {s}, which this model's VAE needs. Resize or crop the clip "
                f"to a multiple of {s} (e.g. {w - w % s}x{h - h % s})."
            )
        vae_dtype = next(self.vae.parameters()).dtype
        pixels = video.to(self.device, vae_dtype).permute(0, 1, 4, 2, 3).reshape(b * f, 3, h, w) * 2.0 - 1.0
        latents = []
        for chunk in pixels.split(VAE_FRAMES_PER_CALL):
            dist = self.vae.encode(chunk).latent_dist
            latents.append(dist.sample(generator) if sample_posterior else dist.mean)
        z = torch.cat(latents) * self.vae.config.scaling_factor
        return z.reshape(b, f, *z.shape[1:]).permute(0, 2, 1, 3, 4).to(self.dtype)

    @torch.no_grad()
    def decode_latents(self, latents):
        if latents.ndim != 5:
            raise InvalidInputError(f"Latents must be [batch, channels, frames, h, w]; got {tuple(latents.shape)}.")
        b, c, f, h, w = latents.shape
        vae_dtype = next(self.vae.parameters()).dtype
        z = latents.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w).to(self.device, vae_dtype)
        z = z / self.vae.config.scaling_factor
        images = torch.cat([self.vae.decode(chunk).sample for chunk in z.split(VAE_FRAMES_PER_CALL)])
        images = (images.float() / 2.0 + 0.5).clamp(0.0, 1.0)
        return images.reshape(b, f, 3, *images.shape[-2:]).permute(0, 1, 3, 4, 2).cpu()

    # ---- text -------------------------------------------------------------------------------------------------
    def encode_prompt(self, prompts: Sequence[str]) -> torch.Tensor:
        """CLIP's last hidden state for prompts padded to the tokenizer's full length (77 for real models): the
        length the denoisers were trained with, so padding tokens carry the same signal as in training. A longer
        prompt is cut there; that is a UserWarning naming what was lost, never silent."""
        if isinstance(prompts, str):
            prompts = [prompts]
        # A tokenizer folder without tokenizer_config.json reports an "unlimited" length; the text encoder's position
        # table is the real limit.
        length = min(self.tokenizer.model_max_length, self.text_encoder.config.max_position_embeddings)
        for prompt in prompts:
            message = cut_prompt_message(self.tokenizer, prompt, length)
            if message:
                # stacklevel 2: the warning points at the engine code that encoded the prompt (sampler, trainer).
                warnings.warn(message, UserWarning, stacklevel=2)
        tokens = self.tokenizer(list(prompts), padding="max_length", max_length=length, truncation=True,
                                return_tensors="pt")
        with torch.no_grad():
            states = self.text_encoder(tokens.input_ids.to(self.device))[0]
        return states.to(self.dtype)

    # ---- denoising --------------------------------------------------------------------------------------------
    def denoise(self, latents, timesteps, text_states, frame_indices=None):
        latents, t, text_states = denoise_inputs(latents, timesteps, text_states, frame_indices)
        return self._run_denoiser(latents.to(self.dtype), t, text_states.to(self.dtype))

    @abstractmethod
    def _run_denoiser(self, latents: torch.Tensor, timesteps: torch.Tensor, text_states: torch.Tensor) -> torch.Tensor:
        """One denoiser call on [B, C, F, h, w] latents with per-sample timesteps [B] and text states [B, T, D]."""

    # ---- gradient checkpointing (checkpointing.py) ------------------------------------------------------------
    @abstractmethod
    def checkpointable_layers(self):
        """The denoiser's layers gradient checkpointing wraps one by one; each family names its own."""

    def enable_gradient_checkpointing(self) -> None:
        checkpointing.enable(self.checkpointable_layers())

    def disable_gradient_checkpointing(self) -> None:
        checkpointing.disable(self.checkpointable_layers())

    @property
    def gradient_checkpointing(self) -> bool:
        return checkpointing.is_enabled(self.checkpointable_layers())
