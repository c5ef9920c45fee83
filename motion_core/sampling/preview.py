"""Cheap RGB previews of latents for the progress display, without running the VAE decoder on every step.

A latent pixel of an SD-style VAE is close to an affine function of the colour of the image patch it encodes
(ComfyUI and A1111 ship hand-fitted 4x3 "latent_rgb_factors" for this). Rather than hard-code factors that fit one
VAE, the projection is estimated once per VAE: encode a set of flat colour images, and fit colour ≈ latent · M + b by
least squares. That costs one small encoder call, then each preview is a matmul over the latents.
"""

from __future__ import annotations

import weakref

import torch

_PROJECTIONS: "weakref.WeakKeyDictionary[object, torch.Tensor]" = weakref.WeakKeyDictionary()
_CALIBRATION_SIDE = 4
"""Latent pixels per side of each calibration image: enough for the VAE's border effects to average out."""


def _calibration_colours() -> torch.Tensor:
    """A 3x3x3 grid of colours plus a grey ramp: spans the colour cube so the fit is well conditioned."""
    levels = torch.tensor([0.0, 0.5, 1.0])
    grid = torch.cartesian_prod(levels, levels, levels)
    greys = torch.linspace(0.1, 0.9, 5)[:, None].expand(5, 3)
    return torch.cat([grid, greys])


@torch.no_grad()
def latent_rgb_projection(backbone) -> torch.Tensor:
    """[C + 1, 3] float32 CPU matrix M with rgb ≈ [latent, 1] @ M, fitted to this backbone's VAE (cached per VAE)."""
    cached = _PROJECTIONS.get(backbone.vae)
    if cached is not None:
        return cached
    colours = _calibration_colours()
    side = _CALIBRATION_SIDE * int(getattr(backbone, "vae_scale_factor", 8))
    frames = colours[:, None, None, :].expand(len(colours), side, side, 3)
    latents = backbone.encode_frames_as_images(frames.contiguous()).float().cpu()  # [1, C, N, h, w]
    features = latents[0].mean(dim=(-2, -1)).T  # [N, C]: one mean latent per colour
    design = torch.cat([features, torch.ones(len(colours), 1)], dim=1)
    projection = torch.linalg.lstsq(design, colours).solution
    _PROJECTIONS[backbone.vae] = projection
    return projection


@torch.no_grad()
def latent_preview(backbone, latents: torch.Tensor, max_side: int = 64) -> torch.Tensor:
    """Latents [C, F, h, w] or [1, C, F, h, w] (scaled, as the denoiser sees them) -> float [F, h', w', 3] in 0..1
    on the CPU, at latent resolution shrunk to at most ``max_side`` pixels on the long side."""
    if latents.ndim == 5:
        latents = latents[0]
    projection = latent_rgb_projection(backbone)
    z = latents.detach().float().cpu()
    longest = max(z.shape[-2:])
    if longest > max_side:
        z = torch.nn.functional.adaptive_avg_pool2d(
            z, (max(1, z.shape[-2] * max_side // longest), max(1, z.shape[-1] * max_side // longest)))
    rgb = torch.einsum("cfhw,cd->fhwd", z, projection[:-1]) + projection[-1]
    return rgb.clamp(0.0, 1.0)
