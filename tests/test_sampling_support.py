"""Shared builders for the sampling tests: tiny backbones, random LoRAs that fit them, a moving reference clip.

Not a test module by content; it is named test_sampling_* only to live beside the tests it serves.
"""

from __future__ import annotations

import torch

from motion_core.lora import MotionLora, canonical_key
from motion_core.lora.inject import base_layer
from motion_core.sampling import SampleRequest


def random_lora(backbone, target_sets, *, rank: int = 4, alpha: float = 8.0, seed: int = 0, std: float = 0.3,
                name: str = "lora", kind: str = "motion", **metadata) -> MotionLora:
    """A LoRA with random A and B (a trained LoRA's B is never zero) on ``target_sets`` of ``backbone``."""
    g = torch.Generator().manual_seed(seed)
    modules = dict(backbone.denoiser.named_modules())
    tensors = {}
    for set_name in target_sets:
        for module in backbone.target_modules(set_name):
            layer = base_layer(modules[module])
            if isinstance(layer, torch.nn.Linear):
                shape_a, shape_b = (rank, layer.in_features), (layer.out_features, rank)
            else:
                ones = (1,) * len(layer.kernel_size)
                shape_a, shape_b = (rank, layer.in_channels, *layer.kernel_size), (layer.out_channels, rank, *ones)
            tensors[canonical_key(module, "A")] = torch.randn(shape_a, generator=g) * std
            tensors[canonical_key(module, "B")] = torch.randn(shape_b, generator=g) * std
    described = dict(name=name, kind=kind, rank=rank, alpha=alpha, family=backbone.family,
                     base_fingerprint=backbone.fingerprint(), target_sets=list(target_sets))
    described.update(metadata)
    return MotionLora(tensors, described)


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
