"""Training objectives: how clean latents are noised, what the denoiser is trained to predict, and how a prediction
turns back into a clean estimate.

A backbone owns one objective, and recipes and the sampler speak only to it, so no recipe grows a per-family branch:

- ``DiffusionObjective``: the DDPM family (ModelScope/ZeroScope, AnimateDiff): z_t = sqrt(ā_t)·z0 + sqrt(1−ā_t)·ε,
  the model predicts ε or v, model timesteps are the integers 0..T−1.
- ``FlowMatchObjective``: rectified flow (Wan 2.1 / 2.2): z_σ = (1−σ)·z0 + σ·ε, target v = ε − z0, model timestep
  1000·σ, σ drawn uniformly and then shifted towards high noise by the family's shift (Wan: 3 at 480p, 5 at 720p).

Recipes draw timestep *indices* in 0..T−1 (uniform, or NewMove's skew towards T−1); ``model_timesteps`` maps them
to what the denoiser is told. For the DDPM family that is the identity; for flow matching index i gives
u = (i + 1) / T and σ = shift·u / (1 + (shift − 1)·u), so "high index" means "high noise" in both families and
NewMove's u^(1/k) law reads as METHODS.md's σ = u^(1/k) before the shift.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch

from ..errors import InvalidInputError, ModelLoadError


class Objective(ABC):
    """kind: "ddpm" or "flow" (the sampler picks its solvers and inversion by it). prediction_type: "epsilon",
    "v_prediction" or "flow" (what the denoiser outputs)."""

    kind: str = ""
    prediction_type: str = ""
    num_train_timesteps: int = 1000

    @abstractmethod
    def model_timesteps(self, indices: torch.Tensor) -> torch.Tensor:
        """Recipe draws (long, 0..T−1) -> the timesteps the denoiser receives."""

    @abstractmethod
    def add_noise(self, clean: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Noisy latents at model timesteps ``t`` ([] or [B]), float32."""

    @abstractmethod
    def target(self, clean: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the denoiser is trained to predict at ``t``."""

    @abstractmethod
    def clean_estimate(self, noisy: torch.Tensor, prediction: torch.Tensor, t) -> torch.Tensor:
        """The clean latents a prediction implies (previews, inversion)."""


def _per_sample(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Timesteps [] or [B] as a float tensor broadcastable over [B, C, F, h, w]."""
    t = torch.as_tensor(t, device=like.device, dtype=torch.float32).reshape(-1)
    return t.reshape(-1, *([1] * (like.ndim - 1)))


class DiffusionObjective(Objective):
    """ε / v prediction on a diffusers DDPM-type scheduler (its betas define ā_t)."""

    kind = "ddpm"

    def __init__(self, scheduler):
        self.scheduler = scheduler
        self.prediction_type = str(scheduler.config.get("prediction_type", "epsilon"))
        if self.prediction_type not in ("epsilon", "v_prediction"):
            raise ModelLoadError(
                f"The scheduler's prediction_type is {self.prediction_type!r}; only 'epsilon' and 'v_prediction' "
                "models can be trained. Fix scheduler/scheduler_config.json of the model folder."
            )
        self.num_train_timesteps = int(scheduler.config.num_train_timesteps)

    def model_timesteps(self, indices):
        return indices

    def add_noise(self, clean, noise, t):
        return self.scheduler.add_noise(clean.float(), noise, t)

    def target(self, clean, noise, t):
        if self.prediction_type == "v_prediction":
            return self.scheduler.get_velocity(clean.float(), noise, t)
        return noise

    def alpha_bar(self, t) -> float:
        alphas = self.scheduler.alphas_cumprod
        return float(alphas[min(max(int(round(float(t))), 0), len(alphas) - 1)])

    def clean_estimate(self, noisy, prediction, t):
        a = self.alpha_bar(t)
        if self.prediction_type == "v_prediction":
            return math.sqrt(a) * noisy - math.sqrt(1.0 - a) * prediction
        return (noisy - math.sqrt(1.0 - a) * prediction) / math.sqrt(a)


class FlowMatchObjective(Objective):
    """Rectified flow with a timestep shift (Wan's training and sampling law)."""

    kind = "flow"
    prediction_type = "flow"

    def __init__(self, shift: float = 3.0, num_train_timesteps: int = 1000,
                 sigma_range: tuple[float, float] = (0.0, 1.0)):
        if not (math.isfinite(float(shift)) and float(shift) > 0):
            raise InvalidInputError(f"The flow shift must be a positive number; got {shift}.")
        low, high = (float(v) for v in sigma_range)
        if not 0.0 <= low < high <= 1.0:
            raise InvalidInputError(f"The training noise range must satisfy 0 <= low < high <= 1; got {sigma_range}.")
        self.shift = float(shift)
        self.num_train_timesteps = int(num_train_timesteps)
        self.sigma_range = (low, high)
        """Training draws land in [low, high]: a Wan 2.2 A14B expert trains only on its own side of the boundary
        (the high-noise expert above it, where motion forms)."""

    def sigma(self, indices: torch.Tensor) -> torch.Tensor:
        """Index 0..T−1 -> shifted σ in (0, 1], then mapped linearly into ``sigma_range``."""
        u = (torch.as_tensor(indices, dtype=torch.float64) + 1.0) / self.num_train_timesteps
        shifted = self.shift * u / (1.0 + (self.shift - 1.0) * u)
        low, high = self.sigma_range
        return (low + (high - low) * shifted).float()

    def model_timesteps(self, indices):
        return self.sigma(indices.cpu()).to(indices.device) * self.num_train_timesteps

    def _sigma_of(self, t, like):
        return _per_sample(t, like) / self.num_train_timesteps

    def add_noise(self, clean, noise, t):
        sigma = self._sigma_of(t, clean)
        return (1.0 - sigma) * clean.float() + sigma * noise.float()

    def target(self, clean, noise, t):
        return noise.float() - clean.float()

    def clean_estimate(self, noisy, prediction, t):
        return noisy.float() - self._sigma_of(t, noisy) * prediction.float()
