"""Shared builders for the sampling tests: tiny backbones, random LoRAs that fit them, a moving reference clip.

Not a test module by content; it is named test_sampling_* only to live beside the tests it serves.
"""

from __future__ import annotations

import torch

from motion_core.lora.synthetic import random_lora  # noqa: F401 - re-exported for the sampling tests
from motion_core.sampling import SampleRequest


def request(**overrides) -> SampleRequest:
    """A fast request: 8 frames of 16x16 px, 3 steps, CFG on."""
    values = dict(prompt="a red ball bouncing", negative_prompt="blurry", seed=7, steps=3, cfg=4.0, frames=8,
                  width=16, height=16, scheduler="ddim")
    values.update(overrides)
    return SampleRequest(**values)


def moving_clip(frames: int = 8, size: int = 16) -> torch.Tensor:
    """float [F, size, size, 3]: a horizontal colour ramp sliding right, a vertical ramp fixed."""
    ramp = torch.linspace(0, 1, size)
    return torch.stack([
        torch.stack([(ramp[None, :] + 0.1 * f).frac().expand(size, size), ramp[:, None].expand(size, size),
                     torch.full((size, size), 0.5)], dim=-1)
        for f in range(frames)
    ])


def denoiser_state(backbone) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in backbone.denoiser.state_dict().items()}


def assert_same_state(backbone, before: dict[str, torch.Tensor]) -> None:
    after = backbone.denoiser.state_dict()
    assert after.keys() == before.keys()
    changed = [k for k in before if not torch.equal(after[k], before[k])]
    assert not changed, f"weights changed: {changed[:3]}"
