"""The temporal kernels of a LoRA stack's entries during one sampling run: injected as modules, switched with the
entries' step ranges, removed after.

A kernel is not a weight delta, so the merge (merge.py) cannot fold it into the weights. Each entry that carries
one gets its own kernel module at the first step it acts, at the entry's strength, and every kernel is taken out
when the run ends, hooks and containers included, so the base model's module tree and weights are exactly as before.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from .kernels import add_kernel, kernel_names, kernel_parameters, remove_kernel, set_kernel
from .stack import LoraStackEntry

NAME_PREFIX = "stack_kernel_"


class KernelRun:
    """Kernels of ``entries`` (those that carry one) on ``model``; ``apply`` and ``restore`` mirror StackMerger's."""

    def __init__(self, model: nn.Module, entries: Sequence[LoraStackEntry]):
        self.model = model
        self.entries = tuple(entries)
        self.injected: dict[int, str] = {}

    @torch.no_grad()
    def apply(self, active: Sequence[int]) -> None:
        """Exactly the entries at ``active`` that carry a kernel act, each at its strength."""
        active = set(active)
        for index, entry in enumerate(self.entries):
            if not entry.lora.kernel:
                continue
            if index in active and index not in self.injected:
                self._inject(index, entry)
            if index in self.injected:
                set_kernel(self.model, self.injected[index], enabled=index in active, scale=entry.strength)

    def _inject(self, index: int, entry: LoraStackEntry) -> None:
        name = f"{NAME_PREFIX}{index}"
        while name in kernel_names(self.model):  # a run nested in another's (a trainer's preview) picks a free name
            name += "_"
        add_kernel(self.model, name, entry.lora.kernel_spec, enabled=False, trainable=False)
        self.injected[index] = name
        for key, param in kernel_parameters(self.model, name).items():
            param.copy_(entry.lora.kernel[key].to(param.device, param.dtype))

    def restore(self) -> None:
        for name in self.injected.values():
            remove_kernel(self.model, name)
        self.injected.clear()
