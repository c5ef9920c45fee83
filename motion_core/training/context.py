"""The toolbox a recipe's ``step`` works with: one sample, seeded randomness, noising, prediction, adapter
switches and backward.

Recipes never touch the optimiser, the RNG states or autocast directly; going through this object is what keeps
every method deterministic, resumable and mixed-precision-correct without repeating that logic five times.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import torch

from ..lora.control import switch_adapters

if TYPE_CHECKING:  # pragma: no cover
    from ..backbones import Backbone
    from .precision import Precision


@dataclass
class TrainingSample:
    """One cached reference (or regularisation) clip: latents [1, C, F, h, w] and text states, on the device."""

    latents: torch.Tensor
    text_states: Any
    clip_index: int
    caption: str
    regularisation: bool = False
    extra_text: dict[str, Any] = field(default_factory=dict)
    image_latents: torch.Tensor | None = None
    """Each video frame encoded alone [1, C, F_video, h, w] (``Backbone.encode_frames_as_images``); None or the
    very ``latents`` object where the VAE encodes frame by frame."""
    condition: Any = None
    """Image-to-video: the clip's first frame as the backbone's start-image condition (None: text-to-video)."""
    no_image_condition: Any = None
    """Image-to-video: the same clip's condition showing no image (``Backbone.without_image``), what the steps that
    start_image_dropout picks train with."""
    offset: tuple[int, int] = (0, 0)
    """(dx, dy) pixels this copy of the clip was moved by (shift_copies); (0, 0): the clip where it is."""
    extras: dict[str, Any] = field(default_factory=dict)
    """What the recipe computed from the clip once at caching time (``Recipe.clip_extras``: DeT's trajectories)."""

    @property
    def num_frames(self) -> int:
        """Latent frames of the clip (what whole-clip losses see)."""
        return int(self.latents.shape[2])

    @property
    def num_image_frames(self) -> int:
        """Frames available to single-frame paths (video frames; equals num_frames for per-frame VAEs)."""
        return int((self.image_latents if self.image_latents is not None else self.latents).shape[2])


class StepContext:
    """Per-step services for a recipe. ``adapter_names`` maps the recipe's adapter names to the names injected in
    the denoiser (the trainer prefixes them so they never collide with LoRAs a user already attached)."""

    def __init__(self, backbone: "Backbone", recipe, generator: torch.Generator, sample: TrainingSample, *,
                 stage: str, step: int, loss_scale: float, precision: "Precision", adapter_names: dict[str, str]):
        self.backbone = backbone
        self.recipe = recipe
        self.generator = generator
        self.sample = sample
        self.stage = stage
        self.step = step
        self.loss_scale = float(loss_scale)
        self.precision = precision
        self.adapter_names = adapter_names

    # ---- randomness (the trainer's CPU generator only, so runs replay exactly) ---------------------------------
    def timesteps(self, n: int = 1) -> torch.Tensor:
        """``n`` model timesteps from the recipe's law (drawn as indices 0..T−1, mapped by the backbone's
        objective: integers for DDPM families, 1000·σ for flow matching)."""
        index = self.recipe.sample_timesteps(self.generator, self.num_train_timesteps, n)
        return self.backbone.objective.model_timesteps(index).to(self.sample.latents.device)

    @property
    def num_train_timesteps(self) -> int:
        return int(self.backbone.objective.num_train_timesteps)

    def noise_like(self, x: torch.Tensor) -> torch.Tensor:
        # Drawn on the CPU and moved: the same seed gives the same noise on CPU and CUDA.
        return torch.randn(x.shape, generator=self.generator, dtype=torch.float32).to(x.device)

    def randint(self, high: int) -> int:
        return int(torch.randint(0, int(high), (1,), generator=self.generator))

    def random(self) -> float:
        return float(torch.rand((1,), generator=self.generator, dtype=torch.float64))

    def permutation(self, n: int) -> torch.Tensor:
        return torch.randperm(int(n), generator=self.generator)

    # ---- diffusion ----------------------------------------------------------------------------------------------
    def noisy(self, latents: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The forward process at ``t`` in float32 (DDPM: sqrt(ā)·z0 + sqrt(1−ā)·ε; flow: (1−σ)·z0 + σ·ε)."""
        return self.backbone.objective.add_noise(latents.float(), noise, t)

    def target(self, latents: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the model is trained to predict: ε, v = sqrt(ā)·ε − sqrt(1−ā)·z0, or the flow ε − z0."""
        return self.backbone.objective.target(latents.float(), noise, t)

    def single_frame(self, frame: int, noise: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(noisy latents, target) of video frame ``frame`` as a one-frame clip [1, C, 1, h, w], for single-frame
        paths. Where frames are encoded one by one anyway (UNet families) this is exactly that frame of the clip's
        noisy latents with the clip's ``noise``, so the path costs no extra draw; a temporally compressed family
        uses the frame's own image latents and draws its own noise for it (METHODS.md: never slice a latent frame
        out of a compressed clip)."""
        images = self.sample.image_latents
        if images is None or images is self.sample.latents:
            clean, frame_noise = self.sample.latents[:, :, frame:frame + 1], noise[:, :, frame:frame + 1]
        else:
            clean = images[:, :, frame:frame + 1]
            frame_noise = self.noise_like(clean)
        return self.noisy(clean, frame_noise, t), self.target(clean, frame_noise, t)

    def predict(self, noisy_latents: torch.Tensor, t: torch.Tensor, text_states: Any = None,
                frame_indices: Sequence[int] | None = None) -> torch.Tensor:
        """The denoiser's prediction in float32 (under the run's autocast); text defaults to the sample's."""
        text = self.sample.text_states if text_states is None else text_states
        with self.precision.autocast(), self.backbone.conditioned(self.sample.condition):
            out = self.backbone.denoise(noisy_latents.to(self.backbone.dtype), t, text, frame_indices)
        return out.float()

    # ---- adapters -----------------------------------------------------------------------------------------------
    def use_adapters(self, enabled: Sequence[str], trainable: Sequence[str] = ()) -> None:
        """Exactly ``enabled`` act in the next forward passes and exactly ``trainable`` get gradients (names are
        the recipe's). Every other adapter in the model, the user's included, is off and frozen. Call it before
        the forward and keep it until after ``backward``: checkpointed layers re-run their forward in backward."""
        switch_adapters(self.backbone.denoiser, {self.adapter_names[n] for n in enabled},
                        {self.adapter_names[n] for n in trainable})

    def backward(self, loss: torch.Tensor) -> None:
        """Backpropagate ``loss`` (scaled for batch accumulation and, with fp16, by the grad scaler)."""
        self.precision.backward(loss * self.loss_scale)
