"""MotionDirector (Zhao et al., arXiv 2310.08465): dual-path LoRAs with an appearance-debiased temporal loss.

The spatial path fits a spatial LoRA to single frames so it absorbs the reference's appearance; the temporal path
runs the full clip with that spatial LoRA active but frozen, so the temporal LoRA need not learn the appearance
again and keeps only the motion. Several clips get one spatial LoRA each (their looks differ) and share the
temporal LoRA (their motion is the same).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..lora import AdapterSpec
from ..lora.temporal_kernel import KernelSpec
from . import losses
from .base import Recipe, RecipeConfig, spec, temporal_spec


@dataclass(frozen=True)
class MotionDirectorConfig(RecipeConfig):
    """Defaults of the reference implementation (rank 32, AdamW 5e-4 constant, dropout 0.1, ~150 steps per clip)."""

    steps: int = 150
    lr: float = 5e-4
    weight_decay: float = 1e-2
    rank: int = 32
    dropout: float = 0.1
    grad_clip: float = 1.0
    steps_several_clips: int = 400
    weight_decay_several_clips: float = 1e-4
    spatial_skip_probability: float = 0.2
    """The spatial path is skipped on this fraction of steps (the reference code's 0.2)."""
    beta: float = 1.0
    """Weight of the anchor frame in the debiased loss; α = sqrt(β²+1)."""
    shared_spatial_lora: bool = False
    """Several clips: one spatial LoRA for all of them instead of one per clip."""
    temporal_conv: bool = True
    """Ours, not the reference's module list: the temporal LoRA also covers the temporal (frame-axis) convolutions
    where the family has them (UNet3D; METHODS.md counts them as temporal modules). On the built-in ShapesT2V model
    a temporal LoRA without them cannot draw a path the base never drew (one-shot circle, fidelity to the reference
    0.17 without, 0.75 with; docs/benchmarks.md). False = the reference's attention + ff + transformer_in only."""
    temporal_kernel: bool = False
    """Ours, for DiTs (Wan), which have no temporal convolutions: DeT's temporal kernel (128 middle channels, 3 taps,
    every block) travels with the temporal LoRA, trained on the whole-clip path and off on the single-frame one.
    Measured in docs/wan.md ("DeT")."""

    def for_clip_count(self, num_clips: int) -> "MotionDirectorConfig":
        if num_clips > 1:
            return replace(self, steps=self.steps_several_clips, weight_decay=self.weight_decay_several_clips)
        return self


class MotionDirector(Recipe):
    name = "motion_director"
    config_class = MotionDirectorConfig
    motion_adapter = "temporal"

    def spatial_adapter(self, clip_index: int) -> str:
        return "spatial" if self.config.shared_spatial_lora else f"spatial_{clip_index}"

    def _spatial_names(self, num_clips: int) -> list[str]:
        return list(dict.fromkeys(self.spatial_adapter(i) for i in range(num_clips)))

    def adapters(self, backbone, num_clips, *, rank, alpha, dropout) -> list[AdapterSpec]:
        spatial = [spec(backbone, name, ("spatial_self_attn", "spatial_ff"), rank=rank, alpha=alpha,
                        dropout=dropout, kind="appearance") for name in self._spatial_names(num_clips)]
        temporal = temporal_spec(backbone, conv=self.config.temporal_conv, rank=rank, alpha=alpha, dropout=dropout)
        if self.config.temporal_kernel:
            temporal = replace(temporal, temporal_kernel=KernelSpec())
        return [*spatial, temporal]

    def appearance_adapters(self, num_clips: int) -> list[str]:
        return self._spatial_names(num_clips)

    @staticmethod
    def spatial_loss(prediction, target, frame: int):
        """L_s = MSE(ε̂[:,:,0], ε[:,:,f*]): the one-frame prediction against the chosen frame's target."""
        return losses.mse(prediction[:, :, 0], target[:, :, frame])

    def temporal_terms(self, prediction, target, anchor: int):
        return {"temporal_mse": losses.mse(prediction, target),
                "temporal_debiased": losses.appearance_debiased(prediction, target, anchor, self.config.beta)}

    def step(self, ctx):
        sample = ctx.sample
        latents = sample.latents
        noise = ctx.noise_like(latents)
        t = ctx.timesteps(1)
        noisy, target = ctx.noisy(latents, noise, t), ctx.target(latents, noise, t)
        spatial = self.spatial_adapter(sample.clip_index)
        terms = {}
        if ctx.random() >= self.config.spatial_skip_probability:
            frame = ctx.randint(sample.num_image_frames)
            noisy_frame, target_frame = ctx.single_frame(frame, noise, t)
            ctx.use_adapters(enabled=[spatial], trainable=[spatial])
            loss = self.spatial_loss(ctx.predict(noisy_frame, t), target_frame, 0)
            ctx.backward(loss)
            terms["spatial"] = loss.detach()
        anchor = ctx.randint(sample.num_frames)
        ctx.use_adapters(enabled=[spatial, "temporal"], trainable=["temporal"])
        temporal = self.temporal_terms(ctx.predict(noisy, t), target, anchor)
        ctx.backward(temporal["temporal_mse"] + temporal["temporal_debiased"])
        terms.update({k: v.detach() for k, v in temporal.items()})
        terms["total"] = sum(terms.values())
        return terms
