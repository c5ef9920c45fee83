"""An adapter's weights as a plain dict in canonical keys, and loading such a dict back into one adapter.

Canonical keys are the PEFT/diffusers spelling without the adapter name, ``unet.<module>.lora_A.weight`` /
``.lora_B.weight``, so a dict taken from one adapter loads into any other adapter (or model) with the same targets,
and the file format is just this dict plus metadata. An adapter with a DeT temporal kernel adds its kernel's weights
under ``temporal_kernel.<site>.down.weight`` / ``.up.weight`` (temporal_kernel.py).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import LoraMismatchError
from .inject import adapter_state, lora_layers
from .kernels import kernel_parameters

COMPONENT = "unet"
_SUFFIXES = {"A": ".lora_A.weight", "B": ".lora_B.weight"}


def canonical_key(module: str, which: str) -> str:
    """``which`` is "A" (down projection, rank x in) or "B" (up projection, out x rank)."""
    return f"{COMPONENT}.{module}{_SUFFIXES[which]}"


def split_canonical_key(key: str) -> tuple[str, str] | None:
    """(module, "A"|"B") for a canonical key, None for anything else."""
    prefix = COMPONENT + "."
    if not key.startswith(prefix):
        return None
    for which, suffix in _SUFFIXES.items():
        if key.endswith(suffix):
            return key[len(prefix):-len(suffix)], which
    return None


_PATCH_SUFFIXES = {"weight": ".diff", "bias": ".diff_b"}


def patch_key(module: str, parameter: str) -> str:
    """Key of a full-weight patch: ``parameter`` is "weight" (``.diff``) or "bias" (``.diff_b``), ComfyUI's names."""
    return f"{COMPONENT}.{module}{_PATCH_SUFFIXES[parameter]}"


def split_patch_key(key: str) -> tuple[str, str] | None:
    """(module, "weight"|"bias") for a patch key, None for anything else."""
    prefix = COMPONENT + "."
    if not key.startswith(prefix):
        return None
    for parameter, suffix in _PATCH_SUFFIXES.items():
        if key.endswith(suffix) and len(key) > len(prefix) + len(suffix):
            return key[len(prefix):-len(suffix)], parameter
    return None


def _adapter_params(model: nn.Module, name: str) -> dict[str, nn.Parameter]:
    adapter_state(model, name)
    params = {}
    for module_name, layer in lora_layers(model, name):
        params[canonical_key(module_name, "A")] = layer.lora_A[name].weight
        params[canonical_key(module_name, "B")] = layer.lora_B[name].weight
    params.update(kernel_parameters(model, name))
    return params


def adapter_state_dict(model: nn.Module, name: str) -> dict[str, torch.Tensor]:
    """Detached CPU copies of adapter ``name``'s weights (later training does not change them)."""
    return {k: p.detach().to("cpu", copy=True) for k, p in _adapter_params(model, name).items()}


def _sample(keys, n=3) -> str:
    keys = sorted(keys)
    more = f" (and {len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def load_adapter_state(model: nn.Module, name: str, tensors: dict[str, torch.Tensor]) -> None:
    """Copy ``tensors`` into adapter ``name`` only; every key must land and every adapter weight must be given.

    All checks run before the first copy, so a bad dict leaves the adapter as it was. Other adapters and the base
    weights are never written to.
    """
    params = _adapter_params(model, name)
    unknown = set(tensors) - set(params)
    if unknown:
        raise LoraMismatchError(
            f"{len(unknown)} LoRA weights have no place in adapter {name!r}: {_sample(unknown)}. The LoRA targets "
            "modules this adapter does not have; load it for the model family it was trained on."
        )
    missing = set(params) - set(tensors)
    if missing:
        raise LoraMismatchError(
            f"The LoRA lacks {len(missing)} weights adapter {name!r} needs: {_sample(missing)}. The file is "
            "incomplete or was made with other target modules; re-export it or pick matching target sets."
        )
    wrong = [k for k in params if tuple(tensors[k].shape) != tuple(params[k].shape)]
    if wrong:
        k = wrong[0]
        raise LoraMismatchError(
            f"{len(wrong)} LoRA weights have the wrong shape, e.g. {k}: file {tuple(tensors[k].shape)}, model "
            f"{tuple(params[k].shape)}. The LoRA was trained on a model of another size or rank; load the base "
            "model it was trained for."
        )
    with torch.no_grad():
        for k, p in params.items():
            p.copy_(tensors[k].to(device=p.device, dtype=p.dtype))
