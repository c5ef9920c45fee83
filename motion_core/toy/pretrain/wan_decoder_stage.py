"""ShapesWan stage 1b: refine the Wan VAE's decoder on the frozen encoder's posterior means, object pixels weighted.

Why a separate stage: after the joint VAE stage the background is reconstructed well (0.03 mean abs error) but the
objects, ~5% of the pixels, are still blurred (0.20), and the tracker reads colour and shape from exactly those
pixels. ShapesT2V met the same problem and fixed it the same way (FINDINGS.md, "The decoder was the pale-colour bug").
The encoder does not change, so the latents the transformer trains on and generates stay exactly the same: the stage
can run before the text-to-video stage or on a finished model (`--refine-decoder`), with the same result.
"""

from __future__ import annotations

import time

import torch

from .t2v_stage import optimizer_step
from .wan_vae_stage import OBJECT_WEIGHT, _pixels, single_frames

DECODER_OBJECT_WEIGHT = 2 * OBJECT_WEIGHT


def refine_wan_decoder(vae, frames: torch.Tensor, raw_latents: torch.Tensor, objects: torch.Tensor, steps: int,
                       batch: int = 16, lr: float = 5e-4, seed: int = 0, log=print):
    """frames [N, F, H, W, 3] in 0..1; raw_latents [N, C, F, h, w], the encoder's posterior means of those clips
    (not normalised); objects bool [N, F, H, W]. Trains the decoder side (post_quant_conv + decoder) on random single
    frames, so its convolutions' zeroed taps on earlier frames stay zero (`wan_vae_stage.current_frame_only`); returns the VAE frozen, in eval mode. Its own generator: other stages' draws are
    unchanged by running it or not."""
    if steps <= 0:
        return vae
    g = torch.Generator().manual_seed(seed + 7)
    device = next(vae.parameters()).device
    params = [*vae.post_quant_conv.parameters(), *vae.decoder.parameters()]
    vae.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    vae.train()
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    started, n, f = time.monotonic(), frames.shape[0], frames.shape[1]
    for step in range(steps):
        idx, which = torch.randint(0, n, (batch,), generator=g), torch.randint(0, f, (batch,), generator=g)
        x = _pixels(single_frames(frames, idx, which), device)
        z = raw_latents[idx, :, which].unsqueeze(2).to(device)
        weight = 1.0 + DECODER_OBJECT_WEIGHT * single_frames(objects, idx, which).to(device).float()[:, None]
        recon = vae.decode(z).sample
        err = (recon - x).abs() + (recon - x).pow(2)
        loss = (weight * err).mean() / weight.mean()
        optimizer_step(loss, opt, params, sched, stage="wan decoder", step=step)
        if step % 50 == 0 or step == steps - 1:
            log(f"wan decoder step {step + 1}/{steps} loss {loss.item():.4f} ({time.monotonic() - started:.0f}s)")
    return vae.eval().requires_grad_(False)
