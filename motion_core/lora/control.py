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
from .kernels import kernel_names, kernel_parameters, set_kernel
from .registry import adapter_state, lora_layers, registry


_INDEX_ATTR = "_motion_core_layer_index"
_PLAIN_LORA_DICTS = ("lora_A", "lora_B")


class _LayerIndex:
    """What the last full sync left: the registry's state objects and their switches, and each LoRA layer with the
    adapters it holds. ``switch_adapters`` trusts it only while the registry holds the very same state objects with
    the recorded switches and every layer still holds the same adapters; anything else means a full sync."""

    def __init__(self, reg: dict, layers: list):
        self.states = list(reg.items())
        self.switches = [(s.enabled, s.trainable, s.scale) for _, s in self.states]
        self.layers = layers

    def record(self) -> None:
        self.switches = [(s.enabled, s.trainable, s.scale) for _, s in self.states]

    def matches(self, reg: dict) -> bool:
        if len(reg) != len(self.states):
            return False
        for (name, state), switches, (now_name, now) in zip(self.states, self.switches, reg.items()):
            if name != now_name or state is not now or switches != (now.enabled, now.trainable, now.scale):
                return False
        return all(tuple(layer.lora_A) == here for layer, here in self.layers)


def _plain(layer) -> bool:
    """A layer whose adapters are plain LoRA A/B pairs (no DoRA magnitudes, embeddings or frozen variant weights),
    whose switches therefore reduce to its active list and its A/B requires_grad."""
    return not getattr(layer, "frozen_peft_weight_names", None) and all(
        not getattr(layer, d, None) for d in layer.adapter_layer_names if d not in _PLAIN_LORA_DICTS)


def sync_adapters(model: nn.Module) -> None:
    """Make every LoRA layer follow the registry: active set, scale, requires_grad; base weights frozen."""
    reg = registry(model)
    for param_name, param in model.named_parameters():
        if ".lora_" not in param_name:
            param.requires_grad_(False)
    layers = []
    for _, layer in lora_layers(model):
        here = list(layer.lora_A)
        layers.append((layer, tuple(here)))
        layer.enable_adapters(True)
        # set_adapter flips requires_grad on the adapters it touches; the loop below restores our flags.
        layer.set_adapter([n for n in here if n in reg and reg[n].enabled])
        for name in here:
            state = reg.get(name)
            if state is not None:
                layer.set_scale(name, state.scale)
            for param in (*layer.lora_A[name].parameters(), *layer.lora_B[name].parameters()):
                param.requires_grad_(bool(state and state.trainable))
    plain = all(_plain(layer) for layer, _ in layers)
    model.__dict__[_INDEX_ATTR] = _LayerIndex(reg, layers) if plain else None
    _sync_kernels(model, reg, kernel_names(model))


def _sync_kernels(model: nn.Module, reg: dict, names) -> None:
    """Temporal kernels of registered adapters follow their adapter's switches; kernels of no adapter (a sampling
    stack's, injected for one run) keep the switches their owner set."""
    for name in names:
        state = reg.get(name)
        if state is not None:
            set_kernel(model, name, enabled=state.enabled, scale=state.scale, trainable=state.trainable)


def switch_adapters(model: nn.Module, enabled, trainable) -> bool:
    """Exactly the adapters named in ``enabled`` act and exactly those in ``trainable`` get gradients; every other
    registered adapter is off and frozen. The end state is the registry's switches set so and ``sync_adapters``
    run, but where nothing changed the layers since the last sync, only the layers holding an adapter whose switches
    change are touched (the training step switches adapters twice a step: walking every module and parameter each
    time was a fixed cost of MotionDirector's spatial path). Returns whether anything changed."""
    reg = registry(model)
    changed = {}
    for name, state in reg.items():
        want = (name in enabled, name in trainable)
        if (state.enabled, state.trainable) != want:
            changed[name] = want
    if not changed:
        return False
    index = model.__dict__.get(_INDEX_ATTR)
    valid = index is not None and index.matches(reg)
    for name, (on, learn) in changed.items():
        reg[name].enabled, reg[name].trainable = on, learn
    if not valid:
        sync_adapters(model)
        return True
    retrain = {name for name, (_, learn) in changed.items() if learn != index.switches[_position(index, name)][1]}
    for layer, here in index.layers:
        if not any(name in changed for name in here):
            continue
        # What peft's set_adapter stores (the enabled names in the layer's own order); requires_grad as sync sets it.
        layer._active_adapter = [n for n in here if n in reg and reg[n].enabled]
        for name in here:
            if name in retrain:
                learn = reg[name].trainable
                for param in (*layer.lora_A[name].parameters(), *layer.lora_B[name].parameters()):
                    param.requires_grad_(learn)
    index.record()
    _sync_kernels(model, reg, [name for name in changed if name in kernel_names(model)])
    return True


def _position(index: _LayerIndex, name: str) -> int:
    return next(i for i, (n, _) in enumerate(index.states) if n == name)


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
    """The parameters of adapter ``name`` (for an optimizer param group), in a stable module order: its LoRA
    factors, then its temporal kernel's weights where it has one."""
    adapter_state(model, name)
    params = []
    for _, layer in lora_layers(model, name):
        params.extend(layer.lora_A[name].parameters())
        params.extend(layer.lora_B[name].parameters())
    params.extend(kernel_parameters(model, name).values())
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
