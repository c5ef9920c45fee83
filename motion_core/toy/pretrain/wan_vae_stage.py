"""ShapesWan stage 1: teach the tiny AutoencoderKLWan the world's clips, then measure its per-channel latent
statistics (what a Wan VAE's ``latents_mean`` / ``latents_std`` hold, and what WanBackbone normalises with).

What ShapesT2V learned in two stages is done here in one (FINDINGS.md, "The decoder was the pale-colour bug"): the
decoder reads posterior MEANS (the latents the transformer will generate), object pixels weigh 10x in the
reconstruction loss (objects are ~5% of the pixels), and the first three latent channels are anchored to the frame's
colour pooled to the latent grid (`vae_stage.rgb_anchor_loss`). Training windows are 5 frames, the VAE's first frame
plus one 4-frame chunk, so the causal convolutions learn to read the frames before them through their cache.
"""

from __future__ import annotations

import time

import torch

from .vae_stage import ANCHOR_WEIGHT, KL_WEIGHT, rgb_anchor_loss
from .wan_architecture import build_wan_vae

OBJECT_WEIGHT = 10.0
WINDOW = 5


def _pixels(frames: torch.Tensor, device) -> torch.Tensor:
    """[B, F, H, W, 3] in 0..1 -> [B, 3, F, H, W] in -1..1."""
    return frames.to(device).float().permute(0, 4, 1, 2, 3) * 2.0 - 1.0


def train_wan_vae(frames: torch.Tensor, objects: torch.Tensor, steps: int, batch: int = 4, lr: float = 1e-3,
                  seed: int = 0, device="cpu", log=print):
    """frames [N, F, H, W, 3] in 0..1, objects bool [N, F, H, W] (`data.object_pixels`). Returns the VAE, frozen,
    in eval mode on `device`. Random windows and clips come from a CPU generator seeded with `seed`."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    vae = build_wan_vae().to(device)
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    started, n, f = time.monotonic(), frames.shape[0], frames.shape[1]
    for step in range(steps):
        idx = torch.randint(0, n, (batch,), generator=g)
        start = int(torch.randint(0, f - WINDOW + 1, (1,), generator=g))
        x = _pixels(frames[idx, start:start + WINDOW], device)
        weight = 1.0 + OBJECT_WEIGHT * objects[idx, start:start + WINDOW].to(device).float()[:, None]
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.mean).sample
        err = (recon - x).abs() + (recon - x).pow(2)
        loss = (weight * err).mean() / weight.mean() + KL_WEIGHT * posterior.kl().mean()
        # The anchor is per frame: fold time into the batch, [B, C, F, h, w] -> [B*F, C, h, w].
        mean2d = posterior.mean.transpose(1, 2).flatten(0, 1)
        loss = loss + ANCHOR_WEIGHT * rgb_anchor_loss(mean2d, x.transpose(1, 2).flatten(0, 1))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"VAE loss became {loss.item()} at step {step}; lower the learning rate.")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            log(f"wan vae step {step + 1}/{steps} loss {loss.item():.4f} ({time.monotonic() - started:.0f}s)")
    return vae.eval().requires_grad_(False)


@torch.no_grad()
def encode_wan_clips(vae, frames: torch.Tensor, batch: int = 16, progress=None) -> torch.Tensor:
    """[N, F, H, W, 3] -> raw posterior-mean latents [N, C, F, h, w] (float32, CPU; not yet normalised)."""
    device = next(vae.parameters()).device
    out = []
    for i in range(0, frames.shape[0], batch):
        out.append(vae.encode(_pixels(frames[i:i + batch], device)).latent_dist.mean.float().cpu())
        if progress:
            progress(min(i + batch, frames.shape[0]), frames.shape[0])
    return torch.cat(out)


def latent_statistics(latents: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std over every clip, frame and cell: the VAE config's latents_mean / latents_std."""
    per_channel = latents.transpose(0, 1).flatten(1)
    return per_channel.mean(1).tolist(), per_channel.std(1).tolist()


@torch.no_grad()
def wan_reconstruction_error(vae, frames: torch.Tensor, objects: torch.Tensor, count: int = 16):
    """(all, object, background) mean absolute pixel error (0..1 scale) of encode -> decode on `count` clips."""
    x = _pixels(frames[:count], next(vae.parameters()).device)
    recon = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
    err = ((recon - x).abs() / 2.0).mean(1).cpu()
    mask = objects[:count]
    return err.mean().item(), err[mask].mean().item(), err[~mask].mean().item()
