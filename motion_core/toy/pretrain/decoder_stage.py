"""Stage 1b: refine the VAE decoder on the encoder's posterior means, with the object pixels weighted.

The VAE stage decodes sampled latents (mean + std * noise), and in its 300 steps the posterior std stays close to its
start (0.5-0.85 against mean magnitudes of ~0.55, measured), so the decoder learns not to trust fine detail. Objects
are ~5% of the pixels, so it barely learned them: on held-out frames its error was 0.26 on object pixels against
0.015 on the background (mean abs, 0..1), which is why every sample looked pale whatever the latents said. The
diffusion model is trained on, and generates, posterior means; this stage teaches the decoder exactly those, object
pixels first. The encoder is frozen, so the latents (and any UNet trained on them) stay valid.
"""

from __future__ import annotations

import time

import torch

DECODER_OBJECT_WEIGHT = 10.0


def decoder_parameters(vae) -> list[torch.nn.Parameter]:
    return list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())


def refine_decoder(vae, frames: torch.Tensor, latents: torch.Tensor, objects: torch.Tensor, steps: int,
                   *, scaling: float, batch: int = 32, lr: float = 5e-4, object_weight: float = DECODER_OBJECT_WEIGHT,
                   seed: int = 0, should_stop=None, log=print):
    """Train the decoder for `steps` steps on frames [N, F, H, W, 3] (0..1), their scaled posterior-mean latents
    [N, C, F, h, w] (`vae_stage.encode_clips`) and object masks [N, F, H, W] (bool, `data.object_pixels`).

    Loss: L1 + MSE per pixel, weighted 1 + `object_weight` on object pixels and normalised by the mean weight.
    Returns the VAE in eval mode with every parameter frozen again. Random draws come from a CPU generator."""
    if steps <= 0:
        return vae
    device = next(vae.parameters()).device
    n, f = frames.shape[:2]
    flat_frames = frames.reshape(n * f, *frames.shape[2:])
    flat_latents = latents.transpose(1, 2).reshape(n * f, latents.shape[1], *latents.shape[3:])
    flat_objects = objects.reshape(n * f, *objects.shape[2:])
    vae.requires_grad_(False)
    params = decoder_parameters(vae)
    for p in params:
        p.requires_grad_(True)
    vae.train()
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed + 2)
    started = time.monotonic()
    for step in range(steps):
        if should_stop is not None and should_stop():
            log(f"decoder: stopped after {step} steps")
            break
        idx = torch.randint(0, flat_frames.shape[0], (batch,), generator=g)
        x = flat_frames[idx].to(device).float().permute(0, 3, 1, 2) * 2.0 - 1.0
        z = flat_latents[idx.to(flat_latents.device)].to(device).float() / scaling
        w = 1.0 + object_weight * flat_objects[idx].to(device).float()[:, None]
        diff = vae.decode(z).sample - x
        loss = ((diff.abs() + diff.pow(2)) * w).mean() / w.mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"decoder loss became {loss.item()} at step {step}; lower the learning rate.")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"decoder step {step + 1}/{steps} loss {loss.item():.4f} ({time.monotonic() - started:.0f}s)")
    return vae.eval().requires_grad_(False)


@torch.no_grad()
def object_error(vae, frames: torch.Tensor, objects: torch.Tensor, count: int = 64) -> tuple[float, float]:
    """Mean absolute reconstruction error (0..1) on object pixels and on background pixels of the first frame of
    `count` clips: the split that shows whether the decoder draws the objects at all."""
    device = next(vae.parameters()).device
    x = frames[:count, 0].to(device).float().permute(0, 3, 1, 2) * 2.0 - 1.0
    recon = vae.decode(vae.encode(x).latent_dist.mean).sample.clamp(-1, 1)
    err = ((recon - x).abs().mean(1) / 2.0).cpu()
    mask = objects[:count, 0].bool()
    return err[mask].mean().item(), err[~mask].mean().item()
