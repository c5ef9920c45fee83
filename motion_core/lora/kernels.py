"""Putting DeT temporal kernels into a denoiser and taking them out again, by adapter name.

A model may carry several kernels at once (the one a run trains, the ones a LoRA stack samples with), so each site
holds a ModuleDict of them keyed by name, registered as ``<site>.lora_temporal_kernel``. The ``lora_`` prefix is
deliberate: every place that tells adapter tensors from base tensors by that part of the name (block offload keeps
them on the accelerator, the memory plan counts them as adapters, freezing leaves them to the registry) then treats
the kernel as the adapter it is. One forward hook per site adds the enabled kernels' deltas to the self-attention
output, and one pre-hook on the denoiser tells the sites how many tokens a frame has. Removing the last kernel
removes the hooks and the containers, so the module tree is the base model's again.

The hooks are module-level functions that read the module they are called on, never a captured model, so a deepcopy
of a model with kernels runs its own kernels.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn

from ..backbones.wan import temporal_kernel as wan_layout
from ..errors import LoraMismatchError
from .temporal_kernel import KernelSpec, TemporalKernel, kernel_key

CONTAINER = "lora_temporal_kernel"
_SITE_HOOK = "_motion_core_kernel_hook"
_MODEL_HOOK = "_motion_core_kernel_frames_hook"
LAYOUTS = (wan_layout,)
"""Families whose denoiser has kernel sites (each module: ``matches``, ``kernel_sites``, ``width``,
``record_tokens_per_frame``, ``frames_at``, ``TOKENS_PER_FRAME``)."""


def has_kernel_sites(model: nn.Module) -> bool:
    """Whether ``model`` is a family with a place for temporal kernels (a DiT with joint space-time attention)."""
    return any(layout.matches(model) for layout in LAYOUTS)


def layout_of(model: nn.Module):
    for layout in LAYOUTS:
        if layout.matches(model):
            return layout
    raise LoraMismatchError(
        f"A temporal kernel (DeT) has a place only in a diffusion transformer with joint space-time attention (Wan); "
        f"this {type(model).__name__} has none. Train DeT on a Wan model, or turn the temporal kernel off.")


def _site_kernels(site: nn.Module) -> nn.ModuleDict | None:
    return site._modules.get(CONTAINER)


def _add_deltas(layout, site, args, kwargs, output):
    kernels = _site_kernels(site)
    acting = [k for k in kernels.values() if k.enabled and k.scale != 0.0] if kernels is not None else []
    if not acting:
        return None
    tokens = args[0] if args else kwargs["hidden_states"]
    frames = layout.frames_at(site, int(tokens.shape[1]))
    total = None
    for kernel in acting:
        delta = kernel.delta(tokens, frames)
        if delta is not None:
            total = delta if total is None else total + delta
    return None if total is None else output + total.to(output.dtype)


def add_kernel(model: nn.Module, name: str, spec: KernelSpec, *, enabled: bool = True, scale: float = 1.0,
               trainable: bool = True) -> None:
    """A fresh kernel named ``name`` at every site (its output projection zero: the model computes as before)."""
    layout = layout_of(model)
    if name in kernel_names(model):
        raise LoraMismatchError(f"The model already carries a temporal kernel named {name!r}; remove it first.")
    width = layout.width(model)
    for _, site in layout.kernel_sites(model):
        device = next((p.device for p in site.parameters() if p.device.type != "meta"), None)
        if device is None and any(p.device.type == "meta" for p in site.parameters()):
            device = torch.device("meta")
        kernels = _site_kernels(site)
        if kernels is None:
            kernels = nn.ModuleDict()
            site.add_module(CONTAINER, kernels)
            site.__dict__[_SITE_HOOK] = site.register_forward_hook(partial(_add_deltas, layout), with_kwargs=True)
        kernel = TemporalKernel(width, spec, device=device)
        kernel.enabled, kernel.scale = bool(enabled), float(scale)
        kernel.requires_grad_(bool(trainable))
        kernels[name] = kernel
    if _MODEL_HOOK not in model.__dict__:
        model.__dict__[_MODEL_HOOK] = model.register_forward_pre_hook(layout.record_tokens_per_frame,
                                                                      with_kwargs=True)


def remove_kernel(model: nn.Module, name: str) -> None:
    """Delete kernel ``name`` everywhere; the last kernel out takes the hooks and containers with it."""
    layout = layout_of(model)
    for _, site in layout.kernel_sites(model):
        kernels = _site_kernels(site)
        if kernels is None or name not in kernels:
            continue
        del kernels[name]
        if not len(kernels):
            del site._modules[CONTAINER]
            site.__dict__.pop(_SITE_HOOK).remove()
            site.__dict__.pop(layout.TOKENS_PER_FRAME, None)
    if not kernel_names(model) and _MODEL_HOOK in model.__dict__:
        model.__dict__.pop(_MODEL_HOOK).remove()


def kernel_names(model: nn.Module) -> list[str]:
    """Names of the kernels the model carries (empty for a model without kernel sites)."""
    names: dict[str, None] = {}
    for module in model.modules():
        kernels = module._modules.get(CONTAINER)
        if isinstance(kernels, nn.ModuleDict):
            names.update(dict.fromkeys(kernels.keys()))
    return list(names)


def kernels_of(model: nn.Module, name: str) -> list[tuple[str, TemporalKernel]]:
    """(site, kernel) of kernel ``name``, in model order; empty when the model has no such kernel."""
    if not any(True for _ in _containers(model)):
        return []
    out = []
    for site_name, site in layout_of(model).kernel_sites(model):
        kernels = _site_kernels(site)
        if kernels is not None and name in kernels:
            out.append((site_name, kernels[name]))
    return out


def _containers(model: nn.Module):
    for module in model.modules():
        if isinstance(module._modules.get(CONTAINER), nn.ModuleDict):
            yield module._modules[CONTAINER]


def set_kernel(model: nn.Module, name: str, *, enabled: bool | None = None, scale: float | None = None,
               trainable: bool | None = None) -> None:
    """Change kernel ``name``'s switches (None leaves one as it is)."""
    for _, kernel in kernels_of(model, name):
        if enabled is not None:
            kernel.enabled = bool(enabled)
        if scale is not None:
            kernel.scale = float(scale)
        if trainable is not None:
            kernel.requires_grad_(bool(trainable))


def kernel_parameters(model: nn.Module, name: str) -> dict[str, nn.Parameter]:
    """Kernel ``name``'s weights by file key (``temporal_kernel.<site>.down.weight``), in model order."""
    params = {}
    for site, kernel in kernels_of(model, name):
        params[kernel_key(site, "down")] = kernel.down.weight
        params[kernel_key(site, "up")] = kernel.up.weight
    return params


def expected_kernel_shapes(model: nn.Module, spec: KernelSpec) -> dict[str, tuple[int, ...]]:
    """File key -> weight shape of a kernel of ``spec`` on this model (what a file's tensors must match)."""
    layout = layout_of(model)
    width = layout.width(model)
    shapes = {}
    for site, _ in layout.kernel_sites(model):
        shapes[kernel_key(site, "down")] = (spec.rank, width, spec.size)
        shapes[kernel_key(site, "up")] = (width, spec.rank, spec.size)
    return shapes
