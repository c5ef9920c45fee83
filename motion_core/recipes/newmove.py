"""Customizing Motion in Text-to-Video Diffusion Models (Materzynska et al., arXiv 2312.04966), here "NewMove";
our reading (the paper published no code).

A trigger token names the motion in the caption; LoRAs on the temporal layers learn the motion and LoRAs on the
keys/values of the text cross-attention bind it to the token. Timesteps are skewed to high noise, where motion is
formed, and steps on regularisation clips (related motions with their own captions) keep the model from forgetting
motions it already knew.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import losses
from .base import Recipe, RecipeConfig, spec


@dataclass(frozen=True)
class NewMoveConfig(RecipeConfig):
    """k = 2 timestep skew as in METHODS.md; trigger, regularisation ratio, lr and steps are ours."""

    steps: int = 300
    lr: float = 5e-4
    weight_decay: float = 1e-2
    rank: int = 32
    grad_clip: float = 1.0
    trigger: str = "V*"
    timestep_skew: float = 2.0
    regularisation_ratio: float = 0.25
    """Share of steps on regularisation clips, when any are given."""


class NewMove(Recipe):
    name = "newmove"
    config_class = NewMoveConfig
    motion_adapter = "motion"
    uses_regularisation_clips = True

    def adapters(self, backbone, num_clips, *, rank, alpha, dropout):
        # AnimateDiff has no temporal convolutions: there the temporal attention carries the motion alone.
        return [spec(backbone, "motion", ("temporal_attn", "spatial_cross_attn_kv"), optional=("temporal_conv",),
                     rank=rank, alpha=alpha, dropout=dropout)]

    @property
    def regularisation_ratio(self) -> float:
        return self.config.regularisation_ratio

    def training_caption(self, clip_caption: str, training_caption: str | None) -> str:
        """The caption with the trigger token: appended when the caption does not already contain it."""
        caption = training_caption if training_caption else clip_caption
        trigger = self.config.trigger
        if not trigger or trigger in caption:
            return caption
        return f"{caption}, {trigger}" if caption else trigger

    def step(self, ctx):
        latents = ctx.sample.latents
        noise = ctx.noise_like(latents)
        t = ctx.timesteps(1)
        ctx.use_adapters(enabled=["motion"], trainable=["motion"])
        loss = losses.mse(ctx.predict(ctx.noisy(latents, noise, t), t), ctx.target(latents, noise, t))
        ctx.backward(loss)
        name = "regularisation_mse" if ctx.sample.regularisation else "mse"
        return {name: loss.detach(), "total": loss.detach()}
