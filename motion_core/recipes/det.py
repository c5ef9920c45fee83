"""DeT (Shi et al., "Decouple and Track", ICCV 2025, arXiv 2503.17350): a temporal kernel in every DiT block and a
dense tracking loss along the reference's trajectories. Our reading is in docs/wan.md ("DeT").

- The kernel (lora/temporal_kernel.py): a small convolution along the frames beside each block's joint
  self-attention, the local temporal operator a DiT lacks; it starts at zero, so step 0 is the base model.
- The tracking loss: the model's clean estimate x̂0 (what the public code supervises: "the latent feature space")
  should not change along the reference's trajectories from one latent frame to the next, on the least noisy share
  of the schedule, where x̂0 has the clip's layout.
- On a UNet family (temporal convolutions already there) DeT is the temporal LoRA over the temporal attention and
  convolutions with the tracking loss; the kernel is for DiTs.
- A LoRA on the joint self-attention beside the kernel: ours (the public code trains the kernel alone), so the
  result stays a LoRA that core's loader applies in part and the ablation "tracking loss without the kernel" has
  something to train. Both travel in one adapter, saved as one file.

The trajectories come from a classical optical flow of the reference (video/trajectories.py), computed once per
clip when the trainer caches it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from ..errors import InvalidInputError
from ..lora import AdapterSpec
from ..lora.kernels import has_kernel_sites
from ..lora.temporal_kernel import KernelSpec
from ..video.trajectories import latent_tracks
from . import losses
from .base import Recipe, RecipeConfig, spec, temporal_spec

TRACKS = "det_tracks"


@dataclass(frozen=True)
class DeTConfig(RecipeConfig):
    """The public code's kernel (128 middle channels, 3 taps, every block), its tracking-loss weight (0.1) and noise
    gate (t <= 400 of 1000: the least noisy 40%), its weight decay (1e-4) and step count (500). The rate is ours: the
    code's 1e-5 was set for its N(0, 1) kernel initialisation (temporal_kernel.py says why we start smaller)."""

    steps: int = 500
    lr: float = 1e-4
    weight_decay: float = 1e-4
    rank: int = 32
    temporal_kernel: bool = True
    kernel_rank: int = 128
    kernel_size: int = 3
    tracking_weight: float = 0.1
    """Weight of the tracking loss next to the flow-matching MSE (0 turns it off)."""
    tracking_share: float = 0.4
    """The tracking loss acts on this least noisy share of the training schedule (1 = at every noise level)."""

    def __post_init__(self):
        if self.tracking_weight < 0:
            raise InvalidInputError(f"DeT's tracking_weight must be >= 0; got {self.tracking_weight}.")
        if not 0.0 < self.tracking_share <= 1.0:
            raise InvalidInputError(f"DeT's tracking_share must be in (0, 1]; got {self.tracking_share}.")
        KernelSpec(self.kernel_rank, self.kernel_size)  # refuses an even size or an empty rank now, not mid-run

    @property
    def kernel(self) -> KernelSpec | None:
        return KernelSpec(self.kernel_rank, self.kernel_size) if self.temporal_kernel else None


class DeT(Recipe):
    name = "det"
    config_class = DeTConfig
    motion_adapter = "temporal"

    @property
    def uses_clip_extras(self) -> bool:  # trajectories only when the loss is on
        return self.config.tracking_weight > 0

    def adapters(self, backbone, num_clips, *, rank, alpha, dropout) -> list[AdapterSpec]:
        if not has_kernel_sites(backbone.denoiser):
            # A UNet already has temporal convolutions, the operator the kernel adds to a DiT: there DeT is the
            # temporal LoRA over them (as MotionDirector's) with the tracking loss.
            unet = temporal_spec(backbone, conv=True, rank=rank, alpha=alpha, dropout=dropout)
            return [dataclasses.replace(unet, name=self.motion_adapter)]
        lora = spec(backbone, self.motion_adapter, ("temporal_attn",), rank=rank, alpha=alpha, dropout=dropout)
        return [dataclasses.replace(lora, temporal_kernel=self.config.kernel)]

    def clip_extras(self, backbone, video, latents):
        if not self.uses_clip_extras:
            return {}
        h, w = int(latents.shape[-2]), int(latents.shape[-1])
        tracks = latent_tracks(video, (h, w), backbone.temporal_compression)
        if tracks.latent_frames != int(latents.shape[2]):
            raise InvalidInputError(
                f"The reference's trajectories cover {tracks.latent_frames} latent frames but its latents have "
                f"{latents.shape[2]}; this model's VAE groups frames in a way DeT does not know.")
        return {TRACKS: tracks.to(latents.device)}

    def tracking_applies(self, ctx, t: torch.Tensor) -> bool:
        """Whether step ``t`` is in the least noisy ``tracking_share`` of the schedule (model timesteps rise with
        the noise in every objective the pack has)."""
        if self.config.tracking_weight <= 0 or TRACKS not in ctx.sample.extras:
            return False
        edge = int(round(self.config.tracking_share * ctx.num_train_timesteps)) - 1
        limit = ctx.backbone.objective.model_timesteps(torch.tensor([max(edge, 0)]))
        return bool(float(t.reshape(-1)[0]) <= float(limit.reshape(-1)[0]))

    def step(self, ctx):
        latents = ctx.sample.latents
        noise = ctx.noise_like(latents)
        t = ctx.timesteps(1)
        noisy, target = ctx.noisy(latents, noise, t), ctx.target(latents, noise, t)
        ctx.use_adapters(enabled=[self.motion_adapter], trainable=[self.motion_adapter])
        prediction = ctx.predict(noisy, t)
        terms = {"mse": losses.mse(prediction, target)}
        loss = terms["mse"]
        if self.tracking_applies(ctx, t):
            tracks = ctx.sample.extras[TRACKS]
            clean = ctx.backbone.objective.clean_estimate(noisy, prediction, t)
            terms["tracking"] = losses.tracking_consistency(clean, tracks.targets, tracks.visible)
            loss = loss + self.config.tracking_weight * terms["tracking"]
        ctx.backward(loss)
        out = {k: v.detach() for k, v in terms.items()}
        out["total"] = loss.detach()
        return out
