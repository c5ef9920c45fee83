"""Stage 1: teach the tiny AutoencoderKL the world's frames (single frames, L1 + MSE + a light KL, + an RGB anchor).

The anchor pulls the first three latent channels' means towards the frame's 4x4 average colour (in -1..1), leaving
the other channels free for edges and shape. Without it the latents encode an object's colour in differences far
smaller than the background's (measured: 0.3 rms between a red and a blue square against 1.9 between two
backgrounds, at unit latent std), so the diffusion loss hardly rewards getting a colour right, and every prompt gave
the same multicoloured blob. With it the colour gap is 1.0-1.3 against 1.3 (measured), reconstruction improved
(0.038 -> 0.029 mean abs error) and samples come out in one coherent colour.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from .architecture import LATENT_CHANNELS, build_vae

KL_WEIGHT = 1e-6
ANCHOR_WEIGHT = 1.0
ANCHOR_CHANNELS = 3
LUMA_LATENT_CHANNELS = 8


def train_vae(frames: torch.Tensor, steps: int, batch: int = 32, lr: float = 1e-3, seed: int = 0,
              anchor_weight: float = ANCHOR_WEIGHT, luma_anchor: bool = False, device="cpu", log=print):
    """frames: [N, F, H, W, 3] in 0..1 (kept on the CPU; batches move to `device`). Returns the trained VAE (eval
    mode, on `device`) and its scaling factor (1 / latent std). Random draws come from CPU generators, so a seed
    picks the same batches on any device. `luma_anchor`: 8 latent channels instead of 4, channels 3-6 anchored to
    the frame's luminance at twice the latent resolution (space-to-depth), meant to make an object's outline as loud
    in the latents as its colour (in a GPU sweep it made samples worse at 675 steps; FINDINGS.md has the figures)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    vae = build_vae(LUMA_LATENT_CHANNELS if luma_anchor else LATENT_CHANNELS).to(device)
    flat = frames.reshape(-1, *frames.shape[2:])
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    started = time.monotonic()
    for step in range(steps):
        idx = torch.randint(0, flat.shape[0], (batch,), generator=g)
        x = flat[idx].to(device).float().permute(0, 3, 1, 2) * 2.0 - 1.0
        posterior = vae.encode(x).latent_dist
        eps = torch.randn(posterior.mean.shape, generator=g).to(device)
        recon = vae.decode(posterior.mean + posterior.std * eps).sample
        loss = (recon - x).abs().mean() + (recon - x).pow(2).mean() + KL_WEIGHT * posterior.kl().mean()
        if anchor_weight:
            loss = loss + anchor_weight * rgb_anchor_loss(posterior.mean, x)
            if luma_anchor:
                loss = loss + anchor_weight * luma_anchor_loss(posterior.mean, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"vae step {step + 1}/{steps} loss {loss.item():.4f} ({time.monotonic() - started:.0f}s)")
    vae.eval().requires_grad_(False)
    with torch.no_grad():
        pick = torch.randint(0, flat.shape[0], (256,), generator=g)
        sample = flat[pick].to(device).float().permute(0, 3, 1, 2) * 2 - 1
        std = vae.encode(sample).latent_dist.mean.std().item()
    return vae, 1.0 / std


def rgb_anchor_loss(latent_mean: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """MSE between the first latent channels and the frame average-pooled to the latent grid."""
    pooled = F.adaptive_avg_pool2d(x, latent_mean.shape[-2:])
    return (latent_mean[:, :ANCHOR_CHANNELS] - pooled).pow(2).mean()


def luma_anchor_loss(latent_mean: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """MSE between 4 latent channels and the frame's luminance pooled to twice the latent grid, folded 2x2 into
    channels: each latent cell then states which quarter of it is bright, i.e. where an edge runs."""
    luma = F.adaptive_avg_pool2d(x.mean(1, keepdim=True), [2 * n for n in latent_mean.shape[-2:]])
    folded = F.pixel_unshuffle(luma, 2)
    start = ANCHOR_CHANNELS
    return (latent_mean[:, start:start + folded.shape[1]] - folded).pow(2).mean()


@torch.no_grad()
def encode_clips(vae, frames: torch.Tensor, scaling: float, batch: int = 64) -> torch.Tensor:
    """[N, F, H, W, 3] -> scaled posterior-mean latents [N, C, F, h, w] (float32, on the VAE's device)."""
    device = next(vae.parameters()).device
    n, f = frames.shape[:2]
    flat = frames.reshape(n * f, *frames.shape[2:])
    out = []
    for i in range(0, flat.shape[0], batch):
        x = flat[i:i + batch].to(device).float().permute(0, 3, 1, 2) * 2.0 - 1.0
        out.append(vae.encode(x).latent_dist.mean * scaling)
    lat = torch.cat(out)
    return lat.reshape(n, f, *lat.shape[1:]).permute(0, 2, 1, 3, 4).contiguous()


@torch.no_grad()
def reconstruction_error(vae, frames: torch.Tensor, scaling: float, count: int = 64) -> float:
    """Mean absolute pixel error (0..1 scale) of encode -> decode on `count` frames."""
    flat = frames.reshape(-1, *frames.shape[2:])[:count].to(next(vae.parameters()).device).float()
    x = flat.permute(0, 3, 1, 2) * 2.0 - 1.0
    recon = vae.decode(vae.encode(x).latent_dist.mean).sample
    return ((recon.clamp(-1, 1) - x).abs().mean() / 2.0).item()
