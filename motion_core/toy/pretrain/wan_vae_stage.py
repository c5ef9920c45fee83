"""ShapesWan stage 1: teach the tiny AutoencoderKLWan the world's clips, then measure its per-channel latent
statistics (what a Wan VAE's ``latents_mean`` / ``latents_std`` hold, and what WanBackbone normalises with).

The decoder reads posterior MEANS (the latents the transformer will generate), object pixels weigh 10x in the
reconstruction loss (objects are ~5% of the pixels), and the first three latent channels are anchored to the frame's
colour pooled to the latent grid (`vae_stage.rgb_anchor_loss`), as ShapesT2V's VAE (FINDINGS.md).

Frame by frame: every causal 3D convolution's taps on EARLIER frames are zero (`current_frame_only`), so each
frame is encoded and decoded on its own, like an image VAE kept in Wan's class and layout. Measured on the first run,
which trained those taps on 5-frame windows: objects trailed ghosts of their earlier positions, the first frame came
out grey and a blue circle on grey vanished (object-pixel error 0.20, 0.16 after the decoder stage), and the
transformer trained on those latents drew smears. Training on single frames keeps the zeroed taps at zero (their
inputs are the causal padding, so their gradients are zero) and costs a third of a window's step.
"""

from __future__ import annotations

import time

import torch

from .t2v_stage import optimizer_step
from .vae_stage import ANCHOR_WEIGHT, KL_WEIGHT, rgb_anchor_loss
from .wan_architecture import build_wan_vae

OBJECT_WEIGHT = 10.0


def current_frame_only(vae) -> None:
    """Zero every causal convolution's taps on earlier frames (kernel [out, in, t, h, w]: all but the last t)."""
    from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d

    with torch.no_grad():
        for module in vae.modules():
            if isinstance(module, WanCausalConv3d) and module.weight.shape[2] > 1:
                module.weight[:, :, :-1].zero_()


def single_frames(frames: torch.Tensor, idx: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
    """Frame ``which[i]`` of clip ``idx[i]`` as a one-frame clip: [B, 1, H, W, ...]."""
    return frames[idx, which].unsqueeze(1)


def _pixels(frames: torch.Tensor, device) -> torch.Tensor:
    """[B, F, H, W, 3] in 0..1 -> [B, 3, F, H, W] in -1..1."""
    return frames.to(device).float().permute(0, 4, 1, 2, 3) * 2.0 - 1.0


def train_wan_vae(frames: torch.Tensor, objects: torch.Tensor, steps: int, batch: int = 16, lr: float = 1e-3,
                  seed: int = 0, device="cpu", log=print):
    """frames [N, F, H, W, 3] in 0..1, objects bool [N, F, H, W] (`data.object_pixels`). Returns the VAE, frozen,
    in eval mode on `device`. Random frames come from a CPU generator seeded with `seed`."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    vae = build_wan_vae()
    current_frame_only(vae)
    vae = vae.to(device)
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    started, n, f = time.monotonic(), frames.shape[0], frames.shape[1]
    for step in range(steps):
        idx, which = torch.randint(0, n, (batch,), generator=g), torch.randint(0, f, (batch,), generator=g)
        x = _pixels(single_frames(frames, idx, which), device)
        weight = 1.0 + OBJECT_WEIGHT * single_frames(objects, idx, which).to(device).float()[:, None]
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.mean).sample
        err = (recon - x).abs() + (recon - x).pow(2)
        loss = (weight * err).mean() / weight.mean() + KL_WEIGHT * posterior.kl().mean()
        # The anchor is per frame: fold time into the batch, [B, C, F, h, w] -> [B*F, C, h, w].
        mean2d = posterior.mean.transpose(1, 2).flatten(0, 1)
        loss = loss + ANCHOR_WEIGHT * rgb_anchor_loss(mean2d, x.transpose(1, 2).flatten(0, 1))
        optimizer_step(loss, opt, list(vae.parameters()), sched, stage="wan VAE", step=step)
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
