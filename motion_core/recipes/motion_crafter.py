"""MotionCrafter (Zhang et al., arXiv 2312.05288), our reading (the paper published no code).

Spatial and temporal LoRAs are trained together. Predictions are split into appearance (the mean over frames) and
motion (each frame's deviation from that mean): the motion part is fitted to the reference, while the appearance
part is held to what the frozen base model predicts for the same input, so the LoRAs cannot drag the base model's
appearance towards the reference. On a fraction of steps the clip is captioned with another appearance (colour,
subject) and the same terms are applied under that caption: the appearance prior of the base model is distilled
for looks the reference never shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import losses
from .base import Recipe, RecipeConfig, beside_temporal, spec, temporal_spec

COLOURS = ("red", "blue", "green", "yellow", "purple", "orange", "white", "black")
SUBJECTS = ("cat", "dog", "robot", "car", "bird", "horse", "person", "ball")


@dataclass(frozen=True)
class MotionCrafterConfig(RecipeConfig):
    """All defaults are ours (no published code): lr, rank and steps as MotionDirector's several-clip setting."""

    steps: int = 300
    lr: float = 5e-4
    weight_decay: float = 1e-2
    rank: int = 32
    grad_clip: float = 1.0
    appearance_weight: float = 1.0
    """λ_a of the appearance normalisation term."""
    prior_probability: float = 0.2
    """Share of steps captioned with another appearance (appearance prior enhancement); 0 disables it."""
    prior_captions: int = 8
    """How many other-appearance captions per clip are prepared (cached once) to draw from."""
    colours: tuple[str, ...] = COLOURS
    subjects: tuple[str, ...] = SUBJECTS
    temporal_conv: bool = True
    """The temporal LoRA also covers the temporal convolutions where the family has them (UNet3D), as
    MotionDirector's does: on ShapesT2V, one-shot circle without a prior, 0.58 with them against 0.07 without
    (docs/benchmarks.md)."""


class MotionCrafter(Recipe):
    name = "motion_crafter"
    config_class = MotionCrafterConfig
    motion_adapter = "temporal"

    def adapters(self, backbone, num_clips, *, rank, alpha, dropout):
        return [
            spec(backbone, "spatial", beside_temporal(backbone, ("spatial_self_attn", "spatial_ff")), rank=rank,
                 alpha=alpha, dropout=dropout, kind="appearance"),
            temporal_spec(backbone, conv=self.config.temporal_conv, rank=rank, alpha=alpha, dropout=dropout),
        ]

    def appearance_adapters(self, num_clips: int) -> list[str]:
        return ["spatial"]

    def extra_prompts(self, caption: str) -> dict[str, str]:
        """Deterministic colour × subject variants (no RNG at caching time, so resume sees the same prompts)."""
        if self.config.prior_probability <= 0:
            return {}
        c, s = self.config.colours, self.config.subjects
        prompts = {}
        for i in range(self.config.prior_captions):
            look = f"a {c[i % len(c)]} {s[(i * 3 + i // len(c)) % len(s)]}"
            prompts[f"prior_{i}"] = f"{look}, {caption}" if caption else look
        return prompts

    def loss_terms(self, tuned: torch.Tensor, frozen_base: torch.Tensor, target: torch.Tensor,
                   appearance_name: str = "appearance") -> dict[str, torch.Tensor]:
        return {"motion": losses.motion_disentanglement(tuned, target),
                appearance_name: self.config.appearance_weight * losses.appearance_normalisation(tuned, frozen_base)}

    def step(self, ctx):
        sample = ctx.sample
        latents = sample.latents
        noise = ctx.noise_like(latents)
        t = ctx.timesteps(1)
        noisy, target = ctx.noisy(latents, noise, t), ctx.target(latents, noise, t)
        text, appearance_name = sample.text_states, "appearance"
        if sample.extra_text and ctx.random() < self.config.prior_probability:
            keys = sorted(sample.extra_text)
            text, appearance_name = sample.extra_text[keys[ctx.randint(len(keys))]], "appearance_prior"
        ctx.use_adapters(enabled=[])
        with torch.no_grad():
            frozen_base = ctx.predict(noisy, t, text)
        ctx.use_adapters(enabled=["spatial", "temporal"], trainable=["spatial", "temporal"])
        terms = self.loss_terms(ctx.predict(noisy, t, text), frozen_base, target, appearance_name)
        total = sum(terms.values())
        ctx.backward(total)
        return {**{k: v.detach() for k, v in terms.items()}, "total": total.detach()}
