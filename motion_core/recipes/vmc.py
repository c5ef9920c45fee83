"""VMC, Video Motion Customization (Jeong et al., arXiv 2312.00845): temporal-attention adaptation by motion
distillation.

Only the q/k/v projections of temporal attention are adapted, and the loss compares frame residuals (motion
vectors) of prediction and target instead of the predictions themselves, so what every frame shares (appearance)
carries no signal. Train with an appearance-invariant caption ("a car is moving"): the trainer's training_caption.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import losses
from .base import Recipe, RecipeConfig, spec


@dataclass(frozen=True)
class VMCConfig(RecipeConfig):
    """Paper defaults: lr 1e-4, ~400 steps, grad clip 1.0. Rank 32 is ours (the paper tunes the weights)."""

    steps: int = 400
    lr: float = 1e-4
    weight_decay: float = 1e-2
    rank: int = 32
    grad_clip: float = 1.0
    loss: str = "cosine"
    """"cosine" (paper), "l2", or "abs_time_cosine" (the public code's variant); see losses.vmc_motion_loss."""


class VMC(Recipe):
    name = "vmc"
    config_class = VMCConfig
    motion_adapter = "temporal"

    def adapters(self, backbone, num_clips, *, rank, alpha, dropout):
        return [spec(backbone, "temporal", ("temporal_attn_qkv",), rank=rank, alpha=alpha, dropout=dropout)]

    def step(self, ctx):
        latents = ctx.sample.latents
        noise = ctx.noise_like(latents)
        t = ctx.timesteps(1)
        ctx.use_adapters(enabled=["temporal"], trainable=["temporal"])
        prediction = ctx.predict(ctx.noisy(latents, noise, t), t)
        loss = losses.vmc_motion_loss(prediction, ctx.target(latents, noise, t), self.config.loss)
        ctx.backward(loss)
        return {"motion": loss.detach(), "total": loss.detach()}
