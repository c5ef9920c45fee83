"""The registry of our adapters on a model (name -> spec, enabled, scale, trainable) and how to find their layers.

It is the single source of truth that injection (inject.py) writes and switching (control.py) reads, kept apart
from both so neither has to import the other's module.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn as nn
from peft.tuners.lora.layer import LoraLayer

from ..errors import InvalidInputError
from .config import AdapterSpec

_REGISTRY_ATTR = "_motion_core_adapters"


@dataclass
class AdapterState:
    """How one adapter currently behaves; control.py turns this into peft layer state."""

    spec: AdapterSpec
    enabled: bool = True
    scale: float = 1.0
    trainable: bool = True


def registry(model: nn.Module) -> dict[str, AdapterState]:
    """The adapters this package injected into ``model`` (name -> state); empty for a clean model."""
    reg = model.__dict__.get(_REGISTRY_ATTR)
    if reg is None:
        reg = {}
        model.__dict__[_REGISTRY_ATTR] = reg
    return reg


def adapter_names(model: nn.Module) -> list[str]:
    return list(registry(model))


def adapter_state(model: nn.Module, name: str) -> AdapterState:
    reg = registry(model)
    if name not in reg:
        have = ", ".join(reg) or "none"
        raise InvalidInputError(f"The model has no LoRA adapter named {name!r} (adapters present: {have}).")
    return reg[name]


def lora_layers(model: nn.Module, name: str | None = None):
    """Yield (module name, peft LoRA layer) pairs, only those holding adapter ``name`` when one is given."""
    for module_name, module in model.named_modules():
        if isinstance(module, LoraLayer) and (name is None or name in module.lora_A):
            yield module_name, module


def base_layer(module: nn.Module) -> nn.Module:
    """The original layer under any peft wrapping (a module may already carry other adapters)."""
    return module.get_base_layer() if isinstance(module, LoraLayer) else module
