"""Loss terms of the methods as pure functions of prediction and target tensors [B, C, F, h, w].

Kept free of models so each term can be checked against a hand computation on small tensors. Everything is
computed in float32 (predictions may come from a bf16/fp16 autocast) and "MSE" is the mean over all elements.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InvalidInputError

VMC_VARIANTS = ("cosine", "l2", "abs_time_cosine")


def mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(prediction.float(), target.float())


def appearance_debiased(prediction: torch.Tensor, target: torch.Tensor, anchor: int,
                        beta: float = 1.0) -> torch.Tensor:
    """MotionDirector's debiasing term MSE(α·ε̂ − β·ε̂[:,:,k], α·ε − β·ε[:,:,k]) with α = sqrt(β²+1).

    Subtracting an anchor frame removes what all frames share (appearance), so the temporal LoRA is pushed
    towards the inter-frame structure; α keeps the variance of the debiased noise equal to that of ε."""
    prediction, target = prediction.float(), target.float()
    alpha = (beta * beta + 1.0) ** 0.5
    pred_anchor = prediction[:, :, anchor : anchor + 1]
    target_anchor = target[:, :, anchor : anchor + 1]
    return F.mse_loss(alpha * prediction - beta * pred_anchor, alpha * target - beta * target_anchor)


def frame_residuals(x: torch.Tensor) -> torch.Tensor:
    """VMC's motion vectors: x[:,:,1:] − x[:,:,:-1]."""
    return x[:, :, 1:] - x[:, :, :-1]


def vmc_motion_loss(prediction: torch.Tensor, target: torch.Tensor, variant: str = "cosine") -> torch.Tensor:
    """Distance between the frame residuals of prediction and target.

    cosine (default, the paper): 1 − mean over (batch, residual frame) of the cosine similarity of the residual
    frame flattened to one vector (C·h·w). l2: MSE of the residuals. abs_time_cosine (the public code): 1 − mean
    cosine similarity of |residuals| along the time axis, per batch, channel and pixel."""
    if variant not in VMC_VARIANTS:
        raise InvalidInputError(f"VMC loss variant must be one of {VMC_VARIANTS}; got {variant!r}.")
    if prediction.shape[2] < 2:
        raise InvalidInputError("VMC's motion loss needs at least 2 frames; train with frames >= 2.")
    r_hat, r = frame_residuals(prediction.float()), frame_residuals(target.float())
    if variant == "l2":
        return F.mse_loss(r_hat, r)
    if variant == "abs_time_cosine":
        return 1.0 - F.cosine_similarity(r_hat.abs(), r.abs(), dim=2).mean()
    b, c, f = r.shape[:3]
    flat_hat = r_hat.permute(0, 2, 1, 3, 4).reshape(b, f, -1)
    flat = r.permute(0, 2, 1, 3, 4).reshape(b, f, -1)
    return 1.0 - F.cosine_similarity(flat_hat, flat, dim=-1).mean()


def frame_mean(x: torch.Tensor) -> torch.Tensor:
    """MotionCrafter's appearance component: the mean over frames (kept as one frame, [B, C, 1, h, w])."""
    return x.float().mean(dim=2, keepdim=True)


def motion_component(x: torch.Tensor) -> torch.Tensor:
    """MotionCrafter's motion component m(x) = x − mean_f(x)."""
    return x.float() - frame_mean(x)


def motion_disentanglement(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE(m(ε̂), m(ε)): only the per-frame deviations are fitted, not what all frames share."""
    return F.mse_loss(motion_component(prediction), motion_component(target))


def appearance_normalisation(tuned: torch.Tensor, frozen_base: torch.Tensor) -> torch.Tensor:
    """MSE(mean_f(ε̂_tuned), mean_f(ε̂_base)): the appearance stays where the frozen base model has it
    (multiply by λ_a in the recipe). ``frozen_base`` carries no grad."""
    return F.mse_loss(frame_mean(tuned), frame_mean(frozen_base.detach()))


def tracking_consistency(features: torch.Tensor, targets: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """DeT's dense tracking loss: features [B, C, F, h, w] of each latent frame against the next frame's features at
    where the reference's trajectories take each cell (``targets`` [F-1, h, w, 2] as x, y in cell units, bilinear),
    squared difference averaged over channels and the visible cells (``visible`` [F-1, h, w]). Zero exactly when the
    features stay the same along every visible trajectory."""
    features = features.float()
    b, c, f, h, w = features.shape
    if targets.shape[:3] != (f - 1, h, w) or visible.shape != (f - 1, h, w):
        raise InvalidInputError(
            f"Trajectories of {tuple(targets.shape[:3])} do not fit features of {f} frames of {h}x{w}; compute them "
            "for the clip the latents came from.")
    nxt = features[:, :, 1:].permute(0, 2, 1, 3, 4).reshape(b * (f - 1), c, h, w)
    grid = torch.stack([targets[..., 0] * (2.0 / max(w - 1, 1)) - 1.0,
                        targets[..., 1] * (2.0 / max(h - 1, 1)) - 1.0], dim=-1).to(features)
    sampled = F.grid_sample(nxt, grid.repeat(b, 1, 1, 1), mode="bilinear", padding_mode="border", align_corners=True)
    here = features[:, :, :-1].permute(0, 2, 1, 3, 4).reshape(b * (f - 1), c, h, w)
    per_cell = (sampled - here).pow(2).mean(dim=1).reshape(b, f - 1, h, w)
    weight = visible.to(features)[None].expand_as(per_cell)
    return (per_cell * weight).sum() / weight.sum().clamp_min(1.0)
