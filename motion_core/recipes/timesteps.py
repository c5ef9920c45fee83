"""Timestep samplers: which noise levels a training step sees.

All draw from the trainer's own CPU generator, so a run (and a resumed run) sees the same timesteps on any device.
"""

from __future__ import annotations

import torch

from ..errors import InvalidInputError


def uniform(generator: torch.Generator, num_train_timesteps: int, n: int = 1) -> torch.Tensor:
    """t ~ U{0..T-1}: the DDPM training distribution, used by MotionDirector, VMC, Customize-A-Video, MotionCrafter."""
    return torch.randint(0, int(num_train_timesteps), (n,), generator=generator)


def skewed(generator: torch.Generator, num_train_timesteps: int, n: int = 1, k: float = 2.0) -> torch.Tensor:
    """t = floor(T · u^(1/k)), u ~ U(0, 1): density ∝ t^(k-1), so k > 1 favours high noise, where motion forms
    (NewMove's reading of Materzynska et al.); k = 1 is uniform. Clamped to T-1 (u = 1 would give T)."""
    if not k > 0:
        raise InvalidInputError(f"The timestep skew k must be positive (1 = uniform, 2 = default); got {k}.")
    u = torch.rand((n,), generator=generator, dtype=torch.float64)
    t = torch.floor(num_train_timesteps * u.pow(1.0 / k)).long()
    return t.clamp_(0, int(num_train_timesteps) - 1)
