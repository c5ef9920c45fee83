"""Switching adapters on and off, scaling them and freezing them, each independently.

peft ties these together: activating an adapter also makes it trainable, and activating one adapter on a shared
layer deactivates the others. Recipes need them separate (MotionDirector trains the temporal LoRA while the frozen
spatial LoRA stays active; MotionCrafter runs the base with every LoRA off), so the registry in inject.py is the
single source of truth (registry.py) and ``sync_adapters`` re-derives all peft layer state from it after every change.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch.nn as nn

from ..errors import InvalidInputError
from .registry import adapter_state, lora_layers, registry


def sync_adapters(model: nn.Module) -> None:
    """Make every LoRA layer follow the registry: active set, scale, requires_grad; base weights frozen."""
    reg = registry(model)
    for param_name, param in model.named_parameters():
        if ".lora_" not in param_name:
            param.requires_grad_(False)
    for _, layer in lora_layers(model):
        here = list(layer.lora_A)
        layer.enable_adapters(True)
        # set_adapter flips requires_grad on the adapters it touches; the loop below restores our flags.
        layer.set_adapter([n for n in here if n in reg and reg[n].enabled])
        for name in here:
            state = reg.get(name)
            if state is not None:
                layer.set_scale(name, state.scale)
            for param in (*layer.lora_A[name].parameters(), *layer.lora_B[name].parameters()):
                param.requires_grad_(bool(state and state.trainable))


def set_adapter_enabled(model: nn.Module, name: str, enabled: bool) -> None:
    """Let adapter ``name`` act in the forward pass or not; its trainability is untouched."""
    adapter_state(model, name).enabled = bool(enabled)
    sync_adapters(model)


def set_adapter_scale(model: nn.Module, name: str, scale: float) -> None:
    """Multiply adapter ``name``'s effect (on top of alpha/rank); 0 gives exactly the output without it."""
    scale = float(scale)
    if scale != scale:
        raise InvalidInputError(f"LoRA strength for {name!r} must be a number; got NaN.")
    adapter_state(model, name).scale = scale
    sync_adapters(model)


def set_adapter_trainable(model: nn.Module, name: str, trainable: bool) -> None:
    """Freeze or unfreeze adapter ``name``'s weights; a frozen adapter can still be active."""
    adapter_state(model, name).trainable = bool(trainable)
    sync_adapters(model)


def adapter_parameters(model: nn.Module, name: str) -> list[nn.Parameter]:
    """The parameters of adapter ``name`` (for an optimizer param group), in a stable module order."""
    adapter_state(model, name)
    params = []
    for _, layer in lora_layers(model, name):
        params.extend(layer.lora_A[name].parameters())
        params.extend(layer.lora_B[name].parameters())
    return params


@contextmanager
def only_adapters_enabled(model: nn.Module, names):
    """Within the block only ``names`` act (an empty list gives the frozen base); restores the previous switches."""
    reg = registry(model)
    names = set(names)
    for name in names:
        adapter_state(model, name)
    before = {n: s.enabled for n, s in reg.items()}
    try:
        for n, s in reg.items():
            s.enabled = n in names
        sync_adapters(model)
        yield model
    finally:
        for n, was in before.items():
            if n in reg:
                reg[n].enabled = was
        sync_adapters(model)
