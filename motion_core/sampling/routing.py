"""Which denoiser runs a step and which stack entries are merged into it.

A model with one denoiser (every family, and a Wan 2.2 A14B expert loaded alone) runs it at every step with the
whole stack, exactly as before experts existed. A backbone holding both A14B experts hands each timestep to its
owner as WanPipeline does (the high-noise expert for t >= boundary_ratio · 1000), and each LoRA is merged only into
the expert it belongs to (backbones/wan/experts.py says which), only while that expert runs: when the low-noise
expert takes over, the high-noise expert's merged weights are put back at once, not at the end of the run.
"""

from __future__ import annotations

from typing import Sequence

from ..backbones.wan.experts import expert_denoisers, experts_of, loaded_expert, lora_expert
from ..lora.merge import StackMerger
from ..lora.stack import LoraStack


class DenoiserRouting:
    """Use as a context manager around the step loop: on exit every merged weight is restored bit for bit and the
    backbone's ``denoiser`` is the one it was on entry, whatever happened in between."""

    def __init__(self, backbone, stack: LoraStack):
        self.backbone = backbone
        self.experts = experts_of(backbone)
        self.num_train_timesteps = int(getattr(backbone.objective, "num_train_timesteps", 1000))
        self._home = backbone.denoiser
        self._modules = expert_denoisers(backbone)
        # Every merger sees the whole stack (indices stay the stack's own) but is only asked to merge its own entries.
        self._mergers = {name: StackMerger(module, stack) for name, module in self._modules.items()}
        if self.experts is None:
            self._owner = [None] * len(stack)
        else:
            default = loaded_expert(backbone) or self.experts.primary
            self._owner = [lora_expert(entry.lora) or default for entry in stack]

    def owner_of(self, timestep) -> str | None:
        """The expert that denoises ``timestep`` (None: the one denoiser)."""
        return None if self.experts is None else self.experts.expert_at(timestep, self.num_train_timesteps)

    def select(self, timestep) -> str | None:
        """Make the backbone's ``denoiser`` the owner of ``timestep``; returns its name."""
        owner = self.owner_of(timestep)
        self.backbone.denoiser = self._modules[owner]
        return owner

    def enter_step(self, timestep, active: Sequence[int]) -> str | None:
        """Before a sampling step: select the owner and merge the ``active`` entries that belong to it; the other
        expert goes back to its base weights."""
        owner = self.select(timestep)
        for name, merger in self._mergers.items():
            merger.apply(tuple(i for i in active if self._owner[i] == name) if name == owner else ())
        return owner

    def denoise(self, latents, timestep, text_states):
        """``backbone.denoise`` by the owner of ``timestep`` (the noise prior's inversion runs through this)."""
        self.select(timestep)
        return self.backbone.denoise(latents, timestep, text_states)

    @property
    def merge_count(self) -> int:
        return sum(m.merge_count for m in self._mergers.values())

    def restore(self) -> None:
        for merger in self._mergers.values():
            merger.restore()
        self.backbone.denoiser = self._home

    def __enter__(self) -> "DenoiserRouting":
        return self

    def __exit__(self, *exc) -> None:
        self.restore()
