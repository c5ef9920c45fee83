"""Random LoRAs that fit a backbone: what benchmarks and tests need in place of a trained one.

A trained LoRA's B is never zero, so a freshly initialised adapter (B = 0) would prove nothing about merging, files
or sampling; these carry random A and B of a chosen spread.
"""

from __future__ import annotations

import torch

from .inject import base_layer
from .motion_lora import MotionLora
from .state import canonical_key


def random_lora(backbone, target_sets, *, rank: int = 4, alpha: float = 8.0, seed: int = 0, std: float = 0.3,
                name: str = "lora", kind: str = "motion", extra_modules=(), **metadata) -> MotionLora:
    """A LoRA with random A and B (a trained LoRA's B is never zero) on ``target_sets`` of ``backbone``, plus
    ``extra_modules`` by name: layers in no target set that other tools train (e.g. Wan 2.1 I2V's image
    cross-attention, attn2.add_k_proj / add_v_proj)."""
    g = torch.Generator().manual_seed(seed)
    modules = dict(backbone.denoiser.named_modules())
    tensors = {}
    # one draw per (set, module), as before extra_modules existed: seeds keep giving the same LoRA
    chosen = [m for set_name in target_sets for m in backbone.target_modules(set_name)]
    for module in [*chosen, *extra_modules]:
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
