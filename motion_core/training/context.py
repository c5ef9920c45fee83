"""The toolbox a recipe's ``step`` works with: one sample, seeded randomness, noising, prediction, adapter
switches and backward.

Recipes never touch the optimiser, the RNG states or autocast directly; going through this object is what keeps
every method deterministic, resumable and mixed-precision-correct without repeating that logic five times.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import torch

from ..lora.control import sync_adapters
from ..lora.inject import registry

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

    @property
    def num_frames(self) -> int:
        return int(self.latents.shape[2])


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
        t = self.recipe.sample_timesteps(self.generator, self.num_train_timesteps, n)
        return t.to(self.sample.latents.device)

    @property
    def num_train_timesteps(self) -> int:
        return int(self.backbone.scheduler.config.num_train_timesteps)

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
        """z_t = sqrt(ᾱ_t)·z_0 + sqrt(1−ᾱ_t)·ε (the scheduler's forward process), in float32."""
        return self.backbone.scheduler.add_noise(latents.float(), noise, t)

    def target(self, latents: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the model is trained to predict: ε, or v = sqrt(ᾱ_t)·ε − sqrt(1−ᾱ_t)·z_0 for v-prediction."""
        if self.backbone.prediction_type == "v_prediction":
            return self.backbone.scheduler.get_velocity(latents.float(), noise, t)
        return noise

    def predict(self, noisy_latents: torch.Tensor, t: torch.Tensor, text_states: Any = None,
                frame_indices: Sequence[int] | None = None) -> torch.Tensor:
        """The denoiser's prediction in float32 (under the run's autocast); text defaults to the sample's."""
        text = self.sample.text_states if text_states is None else text_states
        with self.precision.autocast():
            out = self.backbone.denoise(noisy_latents.to(self.backbone.dtype), t, text, frame_indices)
        return out.float()

    # ---- adapters -----------------------------------------------------------------------------------------------
    def use_adapters(self, enabled: Sequence[str], trainable: Sequence[str] = ()) -> None:
        """Exactly ``enabled`` act in the next forward passes and exactly ``trainable`` get gradients (names are
        the recipe's). Every other adapter in the model, the user's included, is off and frozen. Call it before
        the forward and keep it until after ``backward``: checkpointed layers re-run their forward in backward."""
        model = self.backbone.denoiser
        on = {self.adapter_names[n] for n in enabled}
        learn = {self.adapter_names[n] for n in trainable}
        changed = False
        for name, state in registry(model).items():
            want = (name in on, name in learn)
            if (state.enabled, state.trainable) != want:
                state.enabled, state.trainable = want
                changed = True
        if changed:
            sync_adapters(model)

    def backward(self, loss: torch.Tensor) -> None:
        """Backpropagate ``loss`` (scaled for batch accumulation and, with fp16, by the grad scaler)."""
        self.precision.backward(loss * self.loss_scale)
