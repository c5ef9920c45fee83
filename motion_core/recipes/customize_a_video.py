"""Customize-A-Video (Ren et al., arXiv 2402.14780): an appearance absorber first, then a temporal LoRA.

Stage 1 fits a spatial LoRA (the absorber) to the clip's frames as unordered single images, so it can only learn
appearance. Stage 2 freezes it but keeps it active while the temporal LoRA (T-LoRA) learns from the ordered clip:
the appearance is already explained, so the T-LoRA is left with the motion.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidInputError
from . import losses
from .base import Recipe, RecipeConfig, Stage, spec


@dataclass(frozen=True)
class CustomizeAVideoConfig(RecipeConfig):
    """Steps, lr and the stage split are ours (the paper gives no single default); rank 32 as MotionDirector."""

    steps: int = 300
    lr: float = 5e-4
    weight_decay: float = 1e-2
    rank: int = 32
    grad_clip: float = 1.0
    absorber_fraction: float = 0.5
    """Share of the steps spent in stage 1 (appearance absorber)."""
    absorber_frames_per_step: int = 0
    """Frames per stage-1 step, drawn at random without order; 0 = all frames of the clip."""


class CustomizeAVideo(Recipe):
    name = "customize_a_video"
    config_class = CustomizeAVideoConfig
    motion_adapter = "temporal"

    def adapters(self, backbone, num_clips, *, rank, alpha, dropout):
        return [
            spec(backbone, "absorber", ("spatial_self_attn", "spatial_ff"), rank=rank, alpha=alpha, dropout=dropout,
                 kind="appearance"),
            spec(backbone, "temporal", ("temporal_attn",), rank=rank, alpha=alpha, dropout=dropout),
        ]

    def appearance_adapters(self, num_clips: int) -> list[str]:
        return ["absorber"]

    def stages(self, total_steps: int) -> list[Stage]:
        if not 0.0 < self.config.absorber_fraction < 1.0:
            raise InvalidInputError(
                f"absorber_fraction must be between 0 and 1; got {self.config.absorber_fraction}."
            )
        if total_steps < 2:
            raise InvalidInputError("Customize-A-Video trains in two stages and needs at least 2 steps.")
        absorber = min(total_steps - 1, max(1, round(total_steps * self.config.absorber_fraction)))
        return [Stage("absorber", absorber), Stage("motion", total_steps - absorber)]

    def step(self, ctx):
        if ctx.stage == "absorber":
            return self._absorber_step(ctx)
        latents = ctx.sample.latents
        noise = ctx.noise_like(latents)
        t = ctx.timesteps(1)
        ctx.use_adapters(enabled=["absorber", "temporal"], trainable=["temporal"])
        loss = losses.mse(ctx.predict(ctx.noisy(latents, noise, t), t), ctx.target(latents, noise, t))
        ctx.backward(loss)
        return {"motion_mse": loss.detach(), "total": loss.detach()}

    def _absorber_step(self, ctx):
        # Frames as images: the per-frame latents (the clip's own latents where the VAE encodes frame by frame).
        latents = ctx.sample.image_latents if ctx.sample.image_latents is not None else ctx.sample.latents
        count = self.config.absorber_frames_per_step or latents.shape[2]
        order = ctx.permutation(latents.shape[2])[: min(count, latents.shape[2])].to(latents.device)
        # [1, C, F, h, w] -> [n, C, 1, h, w]: each frame a clip of its own, with its own noise level.
        frames = latents.index_select(2, order).permute(2, 1, 0, 3, 4)
        noise = ctx.noise_like(frames)
        t = ctx.timesteps(frames.shape[0])
        text = ctx.sample.text_states.expand(frames.shape[0], *ctx.sample.text_states.shape[1:])
        ctx.use_adapters(enabled=["absorber"], trainable=["absorber"])
        total = frames.new_zeros(())
        for part in frame_chunks(frames.shape[0], frames.shape[-2] * frames.shape[-1]):
            p_t = t[part]
            mse = losses.mse(ctx.predict(ctx.noisy(frames[part], noise[part], p_t), p_t, text[part]),
                             ctx.target(frames[part], noise[part], p_t))
            share = (part.stop - part.start) / frames.shape[0]  # the chunks' weighted sum is the mean over frames
            ctx.backward(mse * share)
            total = total + mse.detach() * share
        return {"absorber_mse": total, "total": total}


# Temporal layers fold every latent pixel of every clip into the attention batch (clips x h x w). CUDA attention
# fails on very large batches: 16 single-frame clips of 64x64 latents (512x512 px, AnimateDiff) gave "CUDA error:
# invalid argument" on an H100, and 15 of them "illegal memory access". Measured there with scaled_dot_product_attention
# (bf16, one frame): batch x heads up to 262,144 ran, 307,200 and more failed. So frames go in chunks of at most
# 16,384 latent pixels: a 16x margin at 8 heads, and 4 frames at a time at 512x512.
MAX_TEMPORAL_BATCH = 16384


def frame_chunks(count: int, latent_pixels: int) -> list[slice]:
    """Slices of at most MAX_TEMPORAL_BATCH // latent_pixels frames (at least one) covering range(count)."""
    size = max(1, MAX_TEMPORAL_BATCH // max(1, latent_pixels))
    return [slice(start, min(count, start + size)) for start in range(0, count, size)]
