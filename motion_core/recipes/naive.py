"""The naive baseline (Tune-A-Video-like): one LoRA on every spatial and temporal attention projection, plain MSE
on the full clip. Nothing separates appearance from motion, which is what the benchmarks measure the methods
against."""

from __future__ import annotations

from dataclasses import dataclass

from . import losses
from .base import Recipe, RecipeConfig, spec


@dataclass(frozen=True)
class NaiveConfig(RecipeConfig):
    steps: int = 300
    lr: float = 5e-4
    weight_decay: float = 1e-2
    rank: int = 32
    grad_clip: float = 1.0


class Naive(Recipe):
    name = "naive"
    config_class = NaiveConfig
    motion_adapter = "motion"

    def adapters(self, backbone, num_clips, *, rank, alpha, dropout):
        return [spec(backbone, "motion", ("spatial_self_attn", "spatial_cross_attn", "temporal_attn"), rank=rank,
                     alpha=alpha, dropout=dropout)]

    def step(self, ctx):
        latents = ctx.sample.latents
        noise = ctx.noise_like(latents)
        t = ctx.timesteps(1)
        ctx.use_adapters(enabled=["motion"], trainable=["motion"])
        loss = losses.mse(ctx.predict(ctx.noisy(latents, noise, t), t), ctx.target(latents, noise, t))
        ctx.backward(loss)
        return {"mse": loss.detach(), "total": loss.detach()}
