"""The first-frame condition of ShapesWan-I2V, laid out as diffusers' WanImageToVideoPipeline lays it out (the
non-``expand_timesteps`` branch of ``prepare_latents`` and its denoising loop), so the shipped folder means the same
model in that pipeline, in the pack and in ComfyUI's concat-latent I2V graph.

    model input = cat([noisy latents (z_dim), mask (T), image latents (z_dim)], dim=1)

- image latents: the VAE's posterior MEAN of a clip as long as the video whose frame 0 is the start image and whose
  other frames are grey (0 in -1..1), normalised like any clip's latents: (z - latents_mean) / latents_std;
- mask: T = the VAE's temporal compression channels, all 1 on latent frame 0 (which holds the start image) and 0 on
  every later one. diffusers builds it per pixel frame and folds T frames into each latent frame's channels; that
  fold is reproduced here, so a VAE with temporal compression gets the same layout as Wan 2.1/2.2's.
"""

from __future__ import annotations

import torch

GREY = 0.5  # in 0..1; the pipeline pads with zeros in -1..1


def temporal_compression(vae) -> int:
    """2 ** (number of temporal downsamplings): 4 for a real Wan VAE, 1 for ShapesWan's."""
    return 2 ** sum(bool(d) for d in vae.config.temperal_downsample)


def condition_clip(start_images: torch.Tensor, frames: int) -> torch.Tensor:
    """[B, H, W, 3] start images in 0..1 -> [B, frames, H, W, 3]: the image, then grey frames."""
    clip = torch.full((start_images.shape[0], frames, *start_images.shape[1:]), GREY, dtype=start_images.dtype)
    clip[:, 0] = start_images
    return clip


def first_frame_mask(batch: int, frames: int, temporal: int, height: int, width: int) -> torch.Tensor:
    """[B, T, latent frames, h, w]: diffusers' ``mask_lat_size`` for a start image only (no last image)."""
    per_frame = torch.zeros(batch, 1, frames, height, width)
    per_frame[:, :, 0] = 1.0
    first = per_frame[:, :, :1].repeat_interleave(temporal, dim=2)
    mask = torch.cat([first, per_frame[:, :, 1:]], dim=2)
    return mask.view(batch, -1, temporal, height, width).transpose(1, 2)


def latent_stats(vae, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (1, -1, 1, 1, 1)
    mean = torch.tensor(vae.config.latents_mean, dtype=like.dtype, device=like.device).view(shape)
    std = torch.tensor(vae.config.latents_std, dtype=like.dtype, device=like.device).view(shape)
    return mean, std


@torch.no_grad()
def encode_clips(vae, frames: torch.Tensor, batch: int = 16) -> torch.Tensor:
    """[N, F, H, W, 3] in 0..1 -> normalised posterior-mean latents [N, C, F', h, w], float32 on the CPU."""
    device, dtype = next(vae.parameters()).device, next(vae.parameters()).dtype
    out = []
    for chunk in frames.split(batch):
        pixels = chunk.to(device, dtype).permute(0, 4, 1, 2, 3) * 2.0 - 1.0
        out.append(vae.encode(pixels).latent_dist.mean.float().cpu())
    z = torch.cat(out)
    mean, std = latent_stats(vae, z)
    return (z - mean) / std


def image_condition(vae, start_images: torch.Tensor, frames: int, batch: int = 16) -> torch.Tensor:
    """[B, H, W, 3] start images in 0..1 -> the condition [B, T + z_dim, latent frames, h, w] (mask, then image
    latents): what the pipeline concatenates after the noisy latents at every step."""
    latents = encode_clips(vae, condition_clip(start_images, frames), batch)
    b, _, latent_frames, h, w = latents.shape
    mask = first_frame_mask(b, frames, temporal_compression(vae), h, w)
    if mask.shape[2] != latent_frames:
        raise ValueError(f"{frames} frames give {latent_frames} latent frames but a mask of {mask.shape[2]}: the "
                         "clip length does not suit this VAE (1 + T*k frames).")
    return torch.cat([mask, latents], dim=1)


def model_input(noisy: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
    """The transformer's input at one step: noisy latents, then the (fixed) condition."""
    return torch.cat([noisy, condition.to(noisy.dtype)], dim=1)
