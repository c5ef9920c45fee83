"""Anchor frames: in a share of the training clips, one frame is shown much less noisy than the rest.

Why: in a ShapesT2V clip every frame shows where the object is as soon as any frame does, so once the noise is low
enough to see the object the frames already say which way it goes, and the motion word adds almost nothing to the
denoising loss (FINDINGS.md, "Which words it follows"). An anchor frame breaks that tie. The other frames are still
at the clip's noise level, and where the object sits in them follows only from the anchor's position, how far each
frame is from it, and the motion word. So using the word pays, and so does knowing a frame's place in the clip.
The anchor frame is left out of the loss: its input is not at the timestep the UNet is told, so it has no
consistent target. Sampling is unchanged; this only teaches the frames to agree with the words.
"""

from __future__ import annotations

import torch

ANCHOR_MAX_FRACTION = 0.5  # the anchor's timestep is drawn from [0, this * t)


def anchor_frames(scheduler, z0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, share: float,
                  g: torch.Generator):
    """(zt, loss_mask). zt: z0 noised at t ([B, C, F, H, W]), except that in a `share` of the clips one random
    frame is noised at a lower timestep in [0, ANCHOR_MAX_FRACTION * t). loss_mask: [B, 1, F, 1, 1], False on
    anchor frames, or None when `share` is 0 (then no random draw is made: the stream stays as before)."""
    zt = scheduler.add_noise(z0, noise, t)
    if share <= 0:
        return zt, None
    batch, frames = z0.shape[0], z0.shape[2]
    chosen = torch.rand(batch, generator=g) < share
    frame = torch.randint(0, frames, (batch,), generator=g)
    low = (t.cpu().double() * torch.rand(batch, generator=g, dtype=torch.float64) * ANCHOR_MAX_FRACTION).long()
    lighter = scheduler.add_noise(z0, noise, low.to(t.device))
    anchor = (chosen[:, None] & (torch.arange(frames)[None, :] == frame[:, None])).view(batch, 1, frames, 1, 1)
    anchor = anchor.to(z0.device)
    return torch.where(anchor, lighter, zt), ~anchor


def mask_anchors(pred: torch.Tensor, target: torch.Tensor, loss_mask) -> torch.Tensor:
    """The prediction with anchor frames replaced by the (detached) target, so they add no error and no gradient."""
    if loss_mask is None:
        return pred
    return torch.where(loss_mask, pred, target.detach())
