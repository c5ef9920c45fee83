"""Merging stack entries into the denoiser's weights for a sampling run, and putting the base weights back exactly.

Why merge instead of running adapters: a merged stack costs nothing per step (the forward pass is the base model's),
while run-time adapters add two small matmuls per adapted layer per LoRA, on every step and every CFG branch.

Why restore by copying, never by subtracting: W + Δ − Δ is not W in floating point (and not at all in fp16), and a
base model that drifts a little after every prompt would break the "no leaks between queued prompts" promise. So
the merger keeps a copy of the original weight of every module it touched (only those: a motion LoRA touches a
small part of the model) and copies it back. Each merge starts from that pristine copy too, so switching active
sets many times never accumulates rounding.

The delta of one module is Σ strength · (alpha / rank) · B @ A, computed in float32 and added to the float32 view of
the original before casting to the weight's dtype once. Convolutions follow peft's layout (A carries the kernel,
B is 1x1), so B @ A over flattened shapes reshaped to the kernel gives peft's delta (and ComfyUI's, whose conv
factors come flattened). A LoRA's full-weight patches (``.diff`` on a weight, ``.diff_b`` on a bias) add
strength · patch to their parameter, as ComfyUI applies them; biases are kept and restored like weights.

A weight stored in fp8 (a model loaded as its fp8 file stores it, memory.adopt_fp8_weight) is merged as
W8 · scale + Δ and stored back in fp8 with the same scale (round_to_fp8); its saved original is the fp8 tensor, so
restoring gives the same bytes back.
"""

from __future__ import annotations

import zlib
from typing import Iterable, Sequence

import torch
import torch.nn as nn

from ..backbones.memory import is_fp8
from ..errors import LoraMismatchError
from .inject import base_layer
from .motion_lora import MotionLora
from .stack import LoraStack, LoraStackEntry
from .state import canonical_key


def lora_delta(lora: MotionLora, module: str, weight: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """strength · (alpha/rank) · B @ A for one module, float32, shaped like ``weight`` and on its device."""
    a, b = lora.weights(module)
    a = a.to(weight.device, torch.float32).flatten(1)
    b = b.to(weight.device, torch.float32).flatten(1)
    scale = float(strength) * lora.module_alpha(module) / lora.module_rank(module)
    if b.shape[0] * a.shape[1] != weight.numel():
        raise LoraMismatchError(
            f"LoRA '{lora.name}' cannot merge into {module}: its delta has {b.shape[0]}x{a.shape[1]} elements, the "
            f"weight {tuple(weight.shape)}. Grouped convolutions cannot carry a LoRA; use a LoRA made for this model."
        )
    return (b @ a).reshape(weight.shape) * scale


def entry_delta(lora: MotionLora, target: tuple[str, str], tensor: torch.Tensor, strength: float) -> torch.Tensor:
    """What ``lora`` adds to ``target`` = (module, "weight"|"bias"): its factors' delta (weights only) plus
    strength · its full-weight patch, float32, shaped like ``tensor``."""
    module, parameter = target
    delta = torch.zeros(tensor.shape, dtype=torch.float32, device=tensor.device)
    if parameter == "weight" and canonical_key(module, "A") in lora.tensors:
        delta = delta + lora_delta(lora, module, tensor, strength)
    patch = lora.patch(module, parameter)
    if patch is not None:
        if patch.numel() != tensor.numel():
            raise LoraMismatchError(
                f"LoRA '{lora.name}' cannot merge its patch of {module}.{parameter}: shape {tuple(patch.shape)}, the "
                f"model's {tuple(tensor.shape)}. The LoRA was made for another model; use one made for this model."
            )
        delta = delta + float(strength) * patch.to(tensor.device, torch.float32).reshape(tensor.shape)
    return delta


_ROUNDING_CHUNK = 1 << 24  # elements rounded at a time: bounds the float32 temporaries (a 14B layer has 70M)


def round_to_fp8(values: torch.Tensor, dtype: torch.dtype, seed: int) -> torch.Tensor:
    """float32 ``values`` in fp8 ``dtype``, clamped to its range and rounded stochastically: to the farther of the
    two neighbouring fp8 values with probability (distance to the nearer) / (their spacing), from a generator seeded
    with ``seed`` (the same merge gives the same weights every time).

    Why not round to nearest: a merged weight is an fp8 value plus a LoRA's delta, and a delta smaller than half an
    fp8 step (3 mantissa bits: 6-12% of the weight) rounds back to the same fp8 value. Measured on the tiny Wan (the
    LoRA's effect on the denoiser's output projected on that of a float32 merge): with deltas of 1% of each weight
    (rms), round-to-nearest kept 27% of the effect, stochastic rounding 122% (100% in expectation; 100% and 94% at
    deltas of 3% and 10%, where round-to-nearest kept 80% and 98%); the noise it adds (0.24% of the output) is a tenth
    of fp8 storage's own (2.6%). ComfyUI patches fp8 weights with stochastic rounding too."""
    flat = values.detach().reshape(-1)
    out = torch.empty(flat.shape, dtype=dtype, device=flat.device)
    generator = torch.Generator(device=flat.device).manual_seed(int(seed))
    for start in range(0, flat.numel(), _ROUNDING_CHUNK):
        out[start:start + _ROUNDING_CHUNK] = _round_chunk(flat[start:start + _ROUNDING_CHUNK], dtype, generator)
    return out.reshape(values.shape)


def _round_chunk(values: torch.Tensor, dtype: torch.dtype, generator: torch.Generator) -> torch.Tensor:
    limit = torch.finfo(dtype).max
    values = values.float().clamp(-limit, limit)
    nearest = values.to(dtype)
    near = nearest.float()
    magnitude = nearest.view(torch.uint8).to(torch.int16) & 0x7F
    away = values.abs() > near.abs()  # the other neighbour is one step farther from zero, else one step nearer
    other_bits = ((values < 0).to(torch.int16) << 7) | (magnitude + torch.where(away, 1, -1)).clamp(min=0)
    other = other_bits.to(torch.uint8).view(dtype).float()
    spacing = (other - near).abs()
    chance = torch.where(spacing > 0, (values - near).abs() / spacing.clamp(min=torch.finfo(torch.float32).tiny), 0.0)
    draw = torch.rand(values.shape, generator=generator, device=values.device)
    return torch.where(draw < chance, other, near).to(dtype)


class StackMerger:
    """Merges any subset of a stack's entries into ``model`` and restores the base weights exactly.

    Use as a context manager so the base comes back even when sampling fails or is cancelled::

        with StackMerger(denoiser, stack) as merger:
            merger.apply(segment.active)   # indices of the entries to merge, in stack order
            ...

    Works on layers that already carry peft adapters (it writes the wrapped base layer), so a trainer's preview can
    stack LoRAs on top of the adapters it is training.
    """

    def __init__(self, model: nn.Module, entries: LoraStack | Sequence[LoraStackEntry]):
        self.model = model
        self.entries: tuple[LoraStackEntry, ...] = tuple(entries)
        found = dict(model.named_modules())
        self._layers: dict[str, nn.Module] = {}
        for entry in self.entries:
            for module in (*entry.lora.modules(), *entry.lora.patched_modules()):
                if module not in found:
                    raise LoraMismatchError(
                        f"LoRA '{entry.lora.name}' targets {module}, which this model lacks. Check the LoRA against "
                        "the model (motion_core.lora.check_lora_fits) before merging."
                    )
                self._layers[module] = base_layer(found[module])
        self._originals: dict[tuple[str, str], torch.Tensor] = {}
        self.active: tuple[int, ...] = ()
        self.merge_count = 0
        """How many times a new active set was written into the weights (the benchmark and tests read it)."""

    def _targets_of(self, active: Iterable[int]) -> dict[tuple[str, str], list[LoraStackEntry]]:
        """(module, "weight"|"bias") -> the entries at ``active`` that change that parameter, in stack order."""
        by_target: dict[tuple[str, str], list[LoraStackEntry]] = {}
        for index in active:
            entry = self.entries[index]
            targets = {(m, "weight") for m in entry.lora.modules()}
            targets |= {(m, p) for m in entry.lora.patched_modules() for p in ("weight", "bias")
                        if entry.lora.patch(m, p) is not None}
            for target in sorted(targets):
                by_target.setdefault(target, []).append(entry)
        return by_target

    def _parameter(self, target: tuple[str, str]) -> torch.Tensor:
        module, parameter = target
        tensor = getattr(self._layers[module], parameter, None)
        if not isinstance(tensor, torch.Tensor):
            raise LoraMismatchError(
                f"A LoRA patches the {parameter} of {module}, which has none in this model. Check the LoRA against "
                "the model (motion_core.lora.check_lora_fits) before merging."
            )
        return tensor

    @torch.no_grad()
    def apply(self, active: Sequence[int]) -> None:
        """Make the weights base + the deltas of the entries at ``active``; a no-op when that set is already in."""
        active = tuple(active)
        if active == self.active:
            return
        before = self._targets_of(self.active)
        after = self._targets_of(active)
        for target, entries in after.items():
            # A parameter whose contributing entries did not change keeps its merged value: at a step-range switch
            # only the parameters of the LoRAs that start or stop are rewritten.
            if [id(e) for e in before.get(target, ())] == [id(e) for e in entries]:
                continue
            tensor = self._parameter(target)
            original = self._originals.setdefault(target, tensor.detach().clone())
            scale = self._fp8_scale(target, tensor)
            merged = original.to(torch.float32) if scale is None else original.to(torch.float32) * scale
            for entry in entries:
                merged = merged + entry_delta(entry.lora, target, tensor, entry.strength)
            if scale is None:
                tensor.copy_(merged.to(tensor.dtype))
            else:
                tensor.copy_(round_to_fp8(merged / scale, tensor.dtype, seed=zlib.crc32(".".join(target).encode())))
        for target in before.keys() - after.keys():
            self._parameter(target).copy_(self._originals[target])
        self.active = active
        self.merge_count += 1

    def _fp8_scale(self, target: tuple[str, str], tensor: torch.Tensor) -> torch.Tensor | None:
        """The float32 scale of an fp8 weight (W = W8 * scale; 1 for a layer without one), None for other tensors."""
        if not is_fp8(tensor):
            return None
        scale = getattr(self._layers[target[0]], "fp8_scale", None)
        return torch.ones((), device=tensor.device) if scale is None else scale.to(tensor.device, torch.float32)

    @torch.no_grad()
    def restore(self) -> None:
        """Copy every touched weight back from its saved original: the model is bit-identical to before."""
        # Originals stay on the weight's device: restoring is then a device-local copy, and only touched modules
        # are kept (for a motion LoRA a small share of the model).
        for target, original in self._originals.items():
            self._parameter(target).copy_(original)
        self._originals.clear()
        self.active = ()

    def __enter__(self) -> "StackMerger":
        return self

    def __exit__(self, *exc) -> None:
        self.restore()
