"""A LoRA's DeT temporal kernel on a native Wan MODEL, as plain torch: what nodes/native_kernel.py hands to core's
model patcher.

Core's LoRA loader patches weights; a kernel is a module, so on a native MODEL it rides as an object patch: each
block's ``self_attn.forward`` (comfy/ldm/wan/model.py) becomes a ``SiteKernels`` that runs the original forward and
adds the kernels' deltas, exactly where the pack's own sampler adds them (the self-attention's input in, its output
plus the delta out, before the block's gate). Core's Wan blocks do not know the frame grid, so a wrapper around the
diffusion model writes the tokens per frame into ``transformer_options`` (``FRAMES_KEY``), which core hands to every
self-attention. A step range is core's: percent of the schedule turned into sigmas by the model's own sampling
(``SIGMAS_KEY`` holds each kernel's (start sigma, end sigma) for the run), as core's hook keyframes do for the LoRA
part, so both parts of one LoRA switch on the same steps.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from ..errors import InvalidInputError, LoraMismatchError
from ..lora.motion_lora import MotionLora
from ..lora.stack import LoraStack
from ..lora.temporal_kernel import KernelSpec, TemporalKernel, kernel_key, split_kernel_key
from ..numbers import finite
from .schedule import FULL_RANGE, check_range, intersect

FRAMES_KEY = "motion_customization.tokens_per_frame"
SIGMAS_KEY = "motion_customization.kernel_sigmas"


@dataclass(frozen=True, eq=False)
class NativeKernel:
    """One LoRA's kernel for a native MODEL: ``tensors`` by file key, acting at ``strength`` over [start, end)."""

    name: str
    spec: KernelSpec
    tensors: dict[str, torch.Tensor]
    strength: float
    start_percent: float = 0.0
    end_percent: float = 1.0

    @property
    def full_range(self) -> bool:
        return (self.start_percent, self.end_percent) == FULL_RANGE

    def module(self, site: str) -> TemporalKernel:
        """The kernel of ``site`` ("blocks.N") as a float32 module on the CPU."""
        down = self.tensors[kernel_key(site, "down")]
        kernel = TemporalKernel(int(down.shape[1]), self.spec)
        with torch.no_grad():
            kernel.down.weight.copy_(down)
            kernel.up.weight.copy_(self.tensors[kernel_key(site, "up")])
        return kernel.requires_grad_(False)


def native_kernels(lora: MotionLora | LoraStack, strength: float = 1.0, start_percent: float = 0.0,
                   end_percent: float = 1.0) -> list[NativeKernel]:
    """The kernels of one LoRA or of a stack's entries, with the strengths and ranges native_loras gives their LoRA
    parts (entries without a kernel, at strength 0 or outside the range are left out)."""
    outer = check_range(start_percent, end_percent, "Apply Motion LoRA")
    strength = finite(strength, "Apply Motion LoRA: strength", "1.0 (0 turns the LoRA off)")
    if isinstance(lora, MotionLora):
        entries = [(lora, 1.0, FULL_RANGE)]
    elif isinstance(lora, LoraStack):
        entries = [(e.lora, e.strength, (e.start_percent, e.end_percent)) for e in lora]
    else:
        raise InvalidInputError(f"Expected a LoRA or a LoRA stack; got {type(lora).__name__}.")
    out = []
    for motion_lora, own, own_range in entries:
        acting = intersect(outer, own_range)
        total = float(strength) * float(own)
        if motion_lora.kernel and acting is not None and total != 0.0:
            out.append(NativeKernel(motion_lora.name or "(unnamed)", motion_lora.kernel_spec, motion_lora.kernel,
                                    total, *acting))
    return out


def check_native_kernel_fits(kernel: NativeKernel, sites: list[str], width: int) -> None:
    """The kernel must have exactly the MODEL's blocks and their width; else an error naming what to connect."""
    have = {split_kernel_key(key)[0] for key in kernel.tensors}
    kernel_width = int(kernel.tensors[kernel_key(min(have), "down")].shape[1])
    if have != set(sites) or kernel_width != int(width):
        raise LoraMismatchError(
            f"LoRA '{kernel.name}''s temporal kernel was made for {len(have)} blocks {kernel_width} channels wide; "
            f"this MODEL has {len(sites)} blocks {width} wide. Connect the Wan model the LoRA was trained for.")


def tokens_per_frame(latent_shape, patch_size) -> int:
    """Tokens of one frame for core's Wan: the latent's height and width padded up to the patch, then patched."""
    _, p_h, p_w = (int(p) for p in patch_size)
    h, w = int(latent_shape[-2]), int(latent_shape[-1])
    return -(-h // p_h) * -(-w // p_w)


def acts_at(kernel: NativeKernel, sigmas: dict, sigma) -> bool:
    """Whether ``kernel`` acts at the current ``sigma``: always on its full range; else where its start sigma is at
    or above it and its end sigma below (core's keyframes: a step acts from the sigma of its start percent on)."""
    if kernel.full_range:
        return True
    bounds = sigmas.get(id(kernel))
    if bounds is None or sigma is None:
        return False
    current = float(torch.as_tensor(sigma).reshape(-1)[0])
    return bounds[1] < current <= bounds[0]


class SiteKernels:
    """Replaces one core self-attention's ``forward``: the class's forward, plus each acting kernel's delta. A
    plain object (not a Module), so setting it as ``forward`` registers nothing in the model."""

    def __init__(self, module, site: str, kernels: list[NativeKernel]):
        self.module, self.site, self.kernels = module, site, list(kernels)
        self._modules = {id(k): k.module(site) for k in self.kernels}
        self._placed: dict = {}

    def with_more(self, kernels: list[NativeKernel]) -> "SiteKernels":
        """This site's kernels and ``kernels`` (a second Apply Motion LoRA node on the same MODEL)."""
        merged = SiteKernels.__new__(SiteKernels)
        merged.module, merged.site, merged.kernels = self.module, self.site, [*self.kernels, *kernels]
        merged._modules = {**self._modules, **{id(k): k.module(self.site) for k in kernels}}
        merged._placed = {}
        return merged

    def _on(self, device) -> dict:
        if device not in self._placed:
            self._placed[device] = {i: copy.deepcopy(m).to(device) for i, m in self._modules.items()}
        return self._placed[device]

    def __call__(self, x, freqs, transformer_options=None, **kwargs):
        options = transformer_options if transformer_options is not None else {}
        out = type(self.module).forward(self.module, x, freqs, transformer_options=options, **kwargs)
        per_frame = options.get(FRAMES_KEY)
        if not per_frame:
            return out
        tokens = int(x.shape[1])
        if tokens % per_frame:
            raise InvalidInputError(
                f"The motion LoRA's temporal kernel cannot split {tokens} tokens into frames of {per_frame}: this Wan "
                "model adds tokens of its own (a reference latent). Use the LoRA without its kernel here (save it "
                "in the comfyui format and load it with LoraLoaderModelOnly).")
        frames = tokens // per_frame
        if frames <= 1:
            return out
        sigmas, sigma = options.get(SIGMAS_KEY, {}), options.get("sigmas")
        placed = None
        for kernel in self.kernels:
            if not acts_at(kernel, sigmas, sigma):
                continue
            placed = placed or self._on(x.device)
            module = placed[id(kernel)]
            module.scale = kernel.strength
            delta = module.delta(x, frames)
            if delta is not None:
                out = out + delta.to(out.dtype)
        return out
