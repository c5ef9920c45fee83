"""MotionLora: one trained adapter as a value (weights + description), the thing that flows as MD_LORA.

It holds no model and no file handle: nodes pass it around, the sampler attaches it, the file layer writes it.
Weights are in canonical keys (see state.py); per-module rank comes from the shapes, per-module alpha from
``metadata["alpha_pattern"]`` falling back to ``metadata["alpha"]``.

``patches`` holds full-weight additions some tools train beside the factors (ComfyUI's Train LoRA node: a ``.diff``
per norm weight and a ``.diff_b`` per bias), keyed ``unet.<module>.diff`` / ``.diff_b`` (patch_key). They act as
``W += strength * diff`` (``b += strength * diff_b``) with no alpha, as ComfyUI applies them; the sampler's merge
carries them, peft adapters cannot.

``kernel`` holds a DeT temporal kernel's weights (temporal_kernel.py), keyed ``temporal_kernel.<site>.down.weight``
/ ``.up.weight``: not a weight delta, so the sampler injects it as a module for the run (lora/kernel_run.py) and a
file for core's loader cannot hold it (formats/wan_comfy.py says so in its header). ``metadata["temporal_kernel"]``
({"rank", "size"}) is derived from those tensors; empty without a kernel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import InvalidInputError
from .metadata import normalise
from .state import canonical_key, patch_key, split_canonical_key, split_patch_key
from .temporal_kernel import KernelSpec, split_kernel_key


@dataclass(frozen=True, eq=False)
class MotionLora:
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, Any] = field(default_factory=dict)
    patches: dict[str, torch.Tensor] = field(default_factory=dict)
    kernel: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self):
        tensors = {k: v.detach() for k, v in self.tensors.items()}
        patches = {k: v.detach() for k, v in (self.patches or {}).items()}
        kernel = {k: v.detach() for k, v in (self.kernel or {}).items()}
        odd = [k for k in patches if split_patch_key(k) is None]
        if odd:
            raise InvalidInputError(
                f"LoRA weight patches must use keys 'unet.<module>.diff' / '.diff_b'; got {', '.join(sorted(odd)[:3])}."
            )
        pairs: dict[str, dict[str, torch.Tensor]] = {}
        bad = [k for k in tensors if split_canonical_key(k) is None]
        if bad:
            raise InvalidInputError(
                f"LoRA weights must use canonical keys 'unet.<module>.lora_A.weight' / '.lora_B.weight'; got "
                f"{', '.join(sorted(bad)[:3])}. Import foreign files through motion_core.lora.load_lora."
            )
        for key, tensor in tensors.items():
            module, which = split_canonical_key(key)
            pairs.setdefault(module, {})[which] = tensor
        if not pairs:
            raise InvalidInputError("A LoRA needs at least one module's weights; this one is empty.")
        for module, pair in pairs.items():
            if set(pair) != {"A", "B"}:
                raise InvalidInputError(
                    f"LoRA module {module} has only its lora_{''.join(pair)} weight; both A and B are needed."
                )
            if pair["A"].shape[0] != pair["B"].shape[1]:
                raise InvalidInputError(
                    f"LoRA module {module}: lora_A has rank {pair['A'].shape[0]} but lora_B has {pair['B'].shape[1]}."
                )
        meta = normalise(self.metadata)
        if meta["kind"] not in ("motion", "appearance"):
            raise InvalidInputError(f"LoRA kind must be 'motion' or 'appearance'; got {meta['kind']!r}.")
        if meta["rank"] <= 0:
            meta["rank"] = max(int(p["A"].shape[0]) for p in pairs.values())
        if meta["alpha"] <= 0:
            meta["alpha"] = float(meta["rank"])
        meta["temporal_kernel"] = _kernel_spec(kernel).to_dict() if kernel else {}
        meta["alpha_pattern"] = {m: float(a) for m, a in meta["alpha_pattern"].items() if float(a) != meta["alpha"]}
        unknown = set(meta["alpha_pattern"]) - set(pairs)
        if unknown:
            raise InvalidInputError(f"LoRA alpha_pattern names modules without weights: {sorted(unknown)[:3]}.")
        object.__setattr__(self, "tensors", tensors)
        object.__setattr__(self, "metadata", meta)
        object.__setattr__(self, "patches", patches)
        object.__setattr__(self, "kernel", kernel)

    # descriptive fields, read-only views of the metadata
    name = property(lambda self: self.metadata["name"])
    kind = property(lambda self: self.metadata["kind"])
    family = property(lambda self: self.metadata["family"])
    recipe = property(lambda self: self.metadata["recipe"])
    rank = property(lambda self: self.metadata["rank"])
    alpha = property(lambda self: self.metadata["alpha"])
    target_sets = property(lambda self: list(self.metadata["target_sets"]))
    trigger = property(lambda self: self.metadata["trigger"])
    caption = property(lambda self: self.metadata["caption"])
    frames = property(lambda self: self.metadata["frames"])
    resolution = property(lambda self: list(self.metadata["resolution"]))
    steps = property(lambda self: self.metadata["steps"])
    base_fingerprint = property(lambda self: self.metadata["base_fingerprint"])
    format_version = property(lambda self: self.metadata["format_version"])

    def modules(self) -> list[str]:
        """Module names (inside the denoiser) this LoRA adapts, sorted."""
        return sorted({split_canonical_key(k)[0] for k in self.tensors})

    def weights(self, module: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(lora_A, lora_B) of one module."""
        return self.tensors[canonical_key(module, "A")], self.tensors[canonical_key(module, "B")]

    def module_rank(self, module: str) -> int:
        return int(self.weights(module)[0].shape[0])

    def module_alpha(self, module: str) -> float:
        return float(self.metadata["alpha_pattern"].get(module, self.metadata["alpha"]))

    def patched_modules(self) -> list[str]:
        """Modules that get a full-weight patch (``.diff`` and/or ``.diff_b``), sorted."""
        return sorted({split_patch_key(k)[0] for k in self.patches})

    def patch(self, module: str, parameter: str) -> torch.Tensor | None:
        """The patch added to ``module``'s ``parameter`` ("weight" or "bias"), None when there is none."""
        return self.patches.get(patch_key(module, parameter))

    @property
    def kernel_spec(self) -> KernelSpec | None:
        """The temporal kernel's shape, None when the LoRA carries none."""
        return KernelSpec.from_dict(self.metadata["temporal_kernel"]) if self.kernel else None

    def kernel_sites(self) -> list[str]:
        """Sites (e.g. "blocks.0") where the temporal kernel sits, in model order."""
        sites = {split_kernel_key(k)[0] for k in self.kernel}
        return sorted(sites, key=lambda s: [int(p) if p.isdigit() else p for p in s.split(".")])

    def without_kernel(self) -> "MotionLora":
        """The LoRA part alone (what core's loader applies of it)."""
        return MotionLora(self.tensors, self.metadata, self.patches)

    def with_metadata(self, **updates) -> "MotionLora":
        """A copy with some descriptive fields changed (e.g. a new name or trigger before saving)."""
        return MotionLora(self.tensors, {**self.metadata, **updates}, self.patches, self.kernel)

    def describe(self) -> str:
        """A few human lines (shown on the Save node): what it is, what it was trained on and for which model."""
        w, h = (self.resolution + [0, 0])[:2] if self.resolution else (0, 0)
        lines = [
            f"{self.name or 'unnamed'}: {self.kind} LoRA for {self.family or 'any'} models"
            f" ({self.recipe or 'imported'}), rank {self.rank}, alpha {self.alpha:g}, {len(self.modules())} modules",
            f"target sets: {', '.join(self.target_sets) or 'unknown'}",
        ]
        if self.steps or self.frames:
            lines.append(f"trained {self.steps} steps on {self.frames} frames at {w}x{h}")
        if self.patches:
            lines.append(f"plus full-weight patches (.diff / .diff_b) on {len(self.patched_modules())} layers")
        if self.kernel:
            spec = self.kernel_spec
            lines.append(f"plus a DeT temporal kernel (rank {spec.rank}, {spec.size} taps) in "
                         f"{len(self.kernel_sites())} blocks: applied by this pack's Sample Video and Apply Motion "
                         "LoRA; core's LoraLoaderModelOnly applies the LoRA part only")
        if self.trigger or self.caption:
            lines.append(f"trigger: {self.trigger or '-'}; caption: {self.caption or '-'}")
        if self.base_fingerprint:
            lines.append(f"base model fingerprint: {self.base_fingerprint}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"MotionLora(name={self.name!r}, kind={self.kind}, family={self.family!r}, "
            f"modules={len(self.modules())}, rank={self.rank}, alpha={self.alpha})"
        )


def _kernel_spec(kernel: dict[str, torch.Tensor]) -> KernelSpec:
    """The kernel's shape from its tensors; every site must have both convolutions of one shape."""
    sites: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in kernel.items():
        parsed = split_kernel_key(key)
        if parsed is None:
            raise InvalidInputError(
                f"Temporal kernel tensors use keys 'temporal_kernel.<site>.down.weight' / '.up.weight'; got {key!r}.")
        sites.setdefault(parsed[0], {})[parsed[1]] = tensor
    shapes = set()
    for site, parts in sites.items():
        if set(parts) != {"down", "up"}:
            raise InvalidInputError(f"The temporal kernel at {site} has only its {''.join(parts)} weights; both "
                                    "down and up are needed.")
        down, up = parts["down"], parts["up"]
        if down.ndim != 3 or up.ndim != 3 or tuple(up.shape) != (down.shape[1], down.shape[0], down.shape[2]):
            raise InvalidInputError(f"The temporal kernel at {site} has shapes {tuple(down.shape)} / "
                                    f"{tuple(up.shape)}; they must be [rank, width, taps] / [width, rank, taps].")
        shapes.add(tuple(down.shape))
    if len(shapes) != 1:
        raise InvalidInputError(f"The temporal kernel's sites differ in shape ({sorted(shapes)}); a kernel has one "
                                "rank and one size everywhere.")
    rank, _, size = shapes.pop()
    return KernelSpec(rank=int(rank), size=int(size))
