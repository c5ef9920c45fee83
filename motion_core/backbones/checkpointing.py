"""Per-layer gradient checkpointing for diffusers UNets whose own support is missing or partial.

UNet3DConditionModel declares none (its 3D blocks ignore the flag); UNetMotionModel checkpoints only resnets, leaving
the spatial transformers and motion modules, which hold most of the activation memory, uncheckpointed. Both are fixed
the same way: the chosen layers get an instance-level forward that runs under torch.utils.checkpoint while gradients
are on. Per layer rather than per block, so the peak holds one layer's activations, as diffusers does for 2D UNets.
Module names are untouched, so LoRA target names and file keys do not change, and peft can still wrap the linears
inside a checkpointed layer.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch.utils.checkpoint import checkpoint


class CheckpointedForward:
    """Runs the module class's forward under checkpoint while grad is enabled, plainly otherwise (sampling).

    It holds the module rather than its bound method so that copy.deepcopy of the UNet gives a copy whose layers run
    their own weights. Non-reentrant checkpointing: it accepts keyword arguments and non-tensor outputs (the
    transformers return dataclasses) and works when only LoRA weights, not inputs, require grad."""

    def __init__(self, module: torch.nn.Module):
        self.module = module

    def __call__(self, *args, **kwargs):
        forward = type(self.module).forward
        if torch.is_grad_enabled():
            return checkpoint(forward, self.module, *args, use_reentrant=False, **kwargs)
        return forward(self.module, *args, **kwargs)


def enable(layers: Iterable[torch.nn.Module]) -> None:
    for layer in layers:
        if not isinstance(layer.__dict__.get("forward"), CheckpointedForward):
            layer.forward = CheckpointedForward(layer)


def disable(layers: Iterable[torch.nn.Module]) -> None:
    for layer in layers:
        if isinstance(layer.__dict__.get("forward"), CheckpointedForward):
            del layer.__dict__["forward"]


def is_enabled(layers: Iterable[torch.nn.Module]) -> bool:
    return any(isinstance(layer.__dict__.get("forward"), CheckpointedForward) for layer in layers)


def block_layers(unet: torch.nn.Module, list_names: Iterable[str]) -> Iterable[torch.nn.Module]:
    """The layers held in the named ModuleLists of every down, mid and up block, in model order."""
    mid = [unet.mid_block] if getattr(unet, "mid_block", None) is not None else []
    names = tuple(list_names)
    for block in [*unet.down_blocks, *mid, *unet.up_blocks]:
        for list_name in names:
            yield from getattr(block, list_name, None) or ()
