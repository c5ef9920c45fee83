"""Putting named LoRA adapters (with their DeT temporal kernel, when a spec has one) into a denoiser and taking
them out again.

peft does the layer surgery (``inject_adapter_in_model``); this module adds what peft leaves to the caller: an
entry in our registry of adapters (registry.py: spec, enabled, scale, trainable), exact module targeting (full names,
no suffix matching that could catch a neighbour), a clear error for targets the model lacks, and a removal that puts
the original layers back so a base model sampled after a LoRA run is the same module tree as before it.
"""

from __future__ import annotations

import re
import warnings

import torch.nn as nn
from peft import LoraConfig, inject_adapter_in_model

from ..errors import InvalidInputError, LoraMismatchError
from .config import AdapterSpec
from .control import sync_adapters
from .kernels import add_kernel, kernels_of, layout_of, remove_kernel
from .registry import AdapterState, adapter_names, adapter_state, base_layer, lora_layers, registry

SUPPORTED_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _positional_input(module, args, kwargs):
    if not args and "input" in kwargs:
        kwargs = dict(kwargs)
        return (kwargs.pop("input"),), kwargs
    return args, kwargs


def _accept_input_keyword(model: nn.Module, name: str) -> None:
    """diffusers' motion modules call ``proj_in(input=x)``, a keyword plain torch layers accept and peft's
    wrappers (``forward(x)``) do not; a pre-hook on each wrapper hands that keyword over as the positional input."""
    for _, layer in lora_layers(model, name):
        if not getattr(layer, "_motion_core_input_hook", False):
            layer.register_forward_pre_hook(_positional_input, with_kwargs=True)
            layer._motion_core_input_hook = True


def check_targets(model: nn.Module, modules) -> None:
    """Raise LoraMismatchError naming target modules the model lacks or cannot carry a LoRA on."""
    found = dict(model.named_modules())
    missing = [m for m in modules if m not in found]
    if missing:
        raise LoraMismatchError(
            f"{len(missing)} of {len(modules)} LoRA target modules are not in this model, e.g. "
            f"{', '.join(missing[:3])}. The LoRA was made for a different model layout: load the model family it "
            "was trained for, or pick target sets this model has."
        )
    unsupported = [m for m in modules if not isinstance(base_layer(found[m]), SUPPORTED_LAYERS)]
    if unsupported:
        kinds = sorted({type(base_layer(found[m])).__name__ for m in unsupported})
        raise LoraMismatchError(
            f"LoRA targets must be Linear or Conv layers; {', '.join(unsupported[:3])} are {', '.join(kinds)}. "
            "Choose projection layers (to_q, to_k, to_v, to_out.0, ff, conv) as targets."
        )


def add_adapter(model: nn.Module, spec: AdapterSpec, *, enabled: bool = True, scale: float = 1.0,
                trainable: bool = True) -> None:
    """Inject ``spec`` as a new adapter (A random, B zero, as peft initialises it); base weights stay frozen."""
    reg = registry(model)
    if spec.name in reg:
        raise InvalidInputError(
            f"The model already has a LoRA adapter named {spec.name!r}; remove it first or choose another name."
        )
    check_targets(model, spec.target_modules)
    if spec.temporal_kernel is not None:
        layout_of(model)  # a clear error before any surgery where the model has no kernel sites
    # A regex string is matched with fullmatch by peft, so each full name hits exactly its own module; a list
    # would also match any module whose name merely ends with a target.
    pattern = "|".join(re.escape(m) for m in spec.target_modules)
    config = LoraConfig(
        r=int(spec.rank),
        lora_alpha=float(spec.alpha),
        lora_dropout=float(spec.dropout),
        target_modules=f"(?:{pattern})",
        rank_pattern={re.escape(m): int(r) for m, r in spec.rank_pattern.items()},
        alpha_pattern={re.escape(m): float(a) for m, a in spec.alpha_pattern.items()},
    )
    with warnings.catch_warnings():
        # peft warns when a model already carries a peft_config; several named adapters are the point here.
        warnings.simplefilter("ignore")
        inject_adapter_in_model(config, model, adapter_name=spec.name)
    _accept_input_keyword(model, spec.name)
    if spec.temporal_kernel is not None:
        add_kernel(model, spec.name, spec.temporal_kernel, enabled=enabled, scale=scale, trainable=trainable)
    reg[spec.name] = AdapterState(spec=spec, enabled=enabled, scale=float(scale), trainable=trainable)
    sync_adapters(model)


def remove_adapter(model: nn.Module, name: str) -> None:
    """Delete adapter ``name``; layers left without adapters are replaced by their original modules."""
    adapter_state(model, name)
    for module_name, layer in list(lora_layers(model, name)):
        layer.delete_adapter(name)
        if not layer.lora_A:
            parent_name, _, child = module_name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, layer.get_base_layer())
    if kernels_of(model, name):
        remove_kernel(model, name)
    configs = getattr(model, "peft_config", None)
    if isinstance(configs, dict):
        configs.pop(name, None)
        if not configs:
            del model.peft_config
    del registry(model)[name]
    sync_adapters(model)


def remove_all_adapters(model: nn.Module) -> None:
    """Return the model to its base state (used between queued prompts so no LoRA leaks into the next one)."""
    for name in adapter_names(model):
        remove_adapter(model, name)
