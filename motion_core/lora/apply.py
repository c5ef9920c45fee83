"""Between MotionLora values and adapters inside a model: attach a LoRA (checked first), take one out as a value.

The checks run before anything is injected, so a LoRA that does not fit leaves the model untouched and the error
says which keys failed and what to load instead.
"""

from __future__ import annotations

import math
import re
from collections import Counter

import torch
import torch.nn as nn

from ..errors import LoraMismatchError
from .config import AdapterSpec
from .inject import SUPPORTED_LAYERS, adapter_state, add_adapter, base_layer, remove_adapter
from .kernels import expected_kernel_shapes
from .motion_lora import MotionLora
from .state import adapter_state_dict, canonical_key, load_adapter_state, patch_key
from .temporal_kernel import KEY_PREFIX


def _expected_shapes(layer: nn.Module, rank: int) -> tuple[tuple, tuple]:
    """lora_A / lora_B shapes peft builds for ``layer`` at ``rank`` (conv: A carries the kernel, B is 1x1)."""
    if isinstance(layer, nn.Linear):
        return (rank, layer.in_features), (layer.out_features, rank)
    ones = (1,) * len(layer.kernel_size)
    return (rank, layer.in_channels, *layer.kernel_size), (layer.out_channels, rank, *ones)


def check_lora_fits(model: nn.Module, lora: MotionLora, *, family: str | None = None,
                    fingerprint: str | None = None, strict_base: bool = True) -> None:
    """Raise LoraMismatchError unless every weight of ``lora`` has a matching place in ``model``."""
    hint = f"It was trained for family '{lora.family}'; load a {lora.family} model." if lora.family else (
        "Load the model family it was trained for.")
    if family and lora.family and family != lora.family:
        raise LoraMismatchError(
            f"LoRA '{lora.name}' was trained for family '{lora.family}' but the loaded model is '{family}'. "
            f"Load a {lora.family} model, or use a LoRA trained for {family}."
        )
    if strict_base and fingerprint and lora.base_fingerprint and fingerprint != lora.base_fingerprint:
        raise LoraMismatchError(
            f"LoRA '{lora.name}' was trained on base model {lora.base_fingerprint}, this model is {fingerprint}. "
            "Load that base model; if you know both share the architecture, turn off the strict base check."
        )
    found = dict(model.named_modules())
    missing = [m for m in lora.modules() if m not in found]
    if missing:
        keys = [canonical_key(m, "A") for m in missing[:3]]
        raise LoraMismatchError(
            f"{len(missing)} of {len(lora.modules())} modules of LoRA '{lora.name}' are not in this model, e.g. "
            f"{', '.join(keys)}. {hint}"
        )
    for module in lora.modules():
        layer = base_layer(found[module])
        if not isinstance(layer, SUPPORTED_LAYERS):
            raise LoraMismatchError(
                f"LoRA '{lora.name}' targets {module}, a {type(layer).__name__}, which cannot carry a LoRA. {hint}"
            )
        a, b = lora.weights(module)
        want_a, want_b = _expected_shapes(layer, lora.module_rank(module))
        if not (_same_or_flat(a.shape, want_a) and _same_or_flat(b.shape, want_b)):
            raise LoraMismatchError(
                f"LoRA '{lora.name}' does not fit {canonical_key(module, 'A')}: file shapes {tuple(a.shape)} / "
                f"{tuple(b.shape)}, model needs {want_a} / {want_b}. The LoRA was made for a model of another "
                f"size. {hint}"
            )
    check_patches_fit(found, lora, hint)
    check_kernel_fits(model, lora, hint)


def check_kernel_fits(model: nn.Module, lora: MotionLora, hint: str) -> None:
    """A LoRA's temporal kernel needs the model's kernel sites, every one of them, at its shapes."""
    if not lora.kernel:
        return
    try:
        want = expected_kernel_shapes(model, lora.kernel_spec)
    except LoraMismatchError as err:
        raise LoraMismatchError(f"LoRA '{lora.name}' carries a DeT temporal kernel: {err}") from None
    if set(want) != set(lora.kernel):
        missing, extra = sorted(set(want) - set(lora.kernel)), sorted(set(lora.kernel) - set(want))
        raise LoraMismatchError(
            f"LoRA '{lora.name}''s temporal kernel was made for {len(lora.kernel_sites())} blocks but this model has "
            f"{len(want) // 2}" + (f" (e.g. {(missing or extra)[0]} does not match)" if missing or extra else "")
            + f". {hint}")
    for key, shape in want.items():
        if tuple(lora.kernel[key].shape) != shape:
            raise LoraMismatchError(
                f"LoRA '{lora.name}''s temporal kernel does not fit {key}: file {tuple(lora.kernel[key].shape)}, "
                f"model {shape}. The LoRA was made for a model of another width. {hint}")


def _same_or_flat(shape, want: tuple) -> bool:
    """peft's factor shape, or ComfyUI's conv factors flattened to [rank, in * kernel] / [out, rank] (the same
    product B @ A once flattened, which is how the merge and core read them)."""
    shape = tuple(shape)
    return shape == want or (len(want) > 2 and shape == (want[0], math.prod(want[1:])))


def check_patches_fit(found: dict, lora: MotionLora, hint: str) -> None:
    """Each full-weight patch needs its module and a parameter of exactly its shape (core would skip a mismatch
    with a log line; here it is an error naming the key)."""
    for module in lora.patched_modules():
        layer = base_layer(found[module]) if module in found else None
        for parameter in ("weight", "bias"):
            patch = lora.patch(module, parameter)
            if patch is None:
                continue
            target = getattr(layer, parameter, None) if layer is not None else None
            if not isinstance(target, torch.Tensor) or tuple(target.shape) != tuple(patch.shape):
                have = "no such layer" if layer is None else (
                    f"no {parameter}" if not isinstance(target, torch.Tensor) else f"shape {tuple(target.shape)}")
                raise LoraMismatchError(
                    f"LoRA '{lora.name}' patches {patch_key(module, parameter)} with shape {tuple(patch.shape)}, but "
                    f"the model has {have} there. {hint}"
                )


def spec_for(lora: MotionLora, adapter_name: str, *, dropout: float = 0.0) -> AdapterSpec:
    """An AdapterSpec that reproduces ``lora`` exactly (mixed ranks and alphas via per-module patterns)."""
    modules = lora.modules()
    ranks = {m: lora.module_rank(m) for m in modules}
    rank = lora.rank if lora.rank in ranks.values() else Counter(ranks.values()).most_common(1)[0][0]
    return AdapterSpec(
        name=adapter_name,
        target_modules=tuple(modules),
        rank=rank,
        alpha=lora.alpha,
        dropout=dropout,
        kind=lora.kind,
        target_sets=tuple(lora.target_sets),
        rank_pattern={m: r for m, r in ranks.items() if r != rank},
        alpha_pattern={m: lora.module_alpha(m) for m in modules if lora.module_alpha(m) != lora.alpha},
        temporal_kernel=lora.kernel_spec,
    )


def adapter_name_for(lora: MotionLora) -> str:
    """A peft-safe adapter name from the LoRA's name (peft forbids dots)."""
    return re.sub(r"[^0-9A-Za-z_-]+", "_", lora.name).strip("_") or "lora"


def attach_lora(model: nn.Module, lora: MotionLora, adapter_name: str | None = None, *, family: str | None = None,
                fingerprint: str | None = None, strength: float = 1.0, enabled: bool = True,
                trainable: bool = False, dropout: float = 0.0, strict_base: bool = True) -> str:
    """Check, inject and load ``lora`` as a new adapter; returns the adapter name. Frozen unless ``trainable``."""
    name = adapter_name or adapter_name_for(lora)
    if lora.patches:
        raise LoraMismatchError(
            f"LoRA '{lora.name}' carries full-weight patches (.diff / .diff_b on {len(lora.patched_modules())} layers, "
            f"e.g. {lora.patched_modules()[0]}) that a peft adapter cannot hold. Sample with it through a LoRA stack "
            "(Sample Video merges the patches), or apply the file with ComfyUI's LoraLoaderModelOnly."
        )
    check_lora_fits(model, lora, family=family, fingerprint=fingerprint, strict_base=strict_base)
    add_adapter(model, spec_for(lora, name, dropout=dropout), enabled=enabled, scale=strength, trainable=trainable)
    found = dict(model.named_modules())
    tensors = {}
    for module in lora.modules():  # flattened conv factors (ComfyUI's) take peft's shapes
        want_a, want_b = _expected_shapes(base_layer(found[module]), lora.module_rank(module))
        a, b = lora.weights(module)
        tensors[canonical_key(module, "A")], tensors[canonical_key(module, "B")] = a.reshape(want_a), b.reshape(want_b)
    tensors.update(lora.kernel)
    try:
        load_adapter_state(model, name, tensors)
    except Exception:
        remove_adapter(model, name)
        raise
    return name


def lora_from_adapter(model: nn.Module, adapter_name: str, **metadata) -> MotionLora:
    """Adapter ``adapter_name``'s current weights as a MotionLora; ``metadata`` fills in the description."""
    spec = adapter_state(model, adapter_name).spec
    described = {
        "name": adapter_name,
        "kind": spec.kind,
        "rank": spec.rank,
        "alpha": spec.alpha,
        "alpha_pattern": {m: spec.alpha_of(m) for m in spec.target_modules},
        "target_sets": list(spec.target_sets),
    }
    described.update(metadata)
    tensors = adapter_state_dict(model, adapter_name)
    kernel = {k: tensors.pop(k) for k in list(tensors) if k.startswith(KEY_PREFIX)}
    return MotionLora(tensors, described, kernel=kernel)
