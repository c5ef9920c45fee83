"""DeT's temporal kernel (Shi et al., arXiv 2503.17350): a small trainable convolution along the frame axis that a
diffusion transformer lacks, as a value (its spec) and as the module that computes it.

Why it exists: a DiT's only path between frames is its joint space-time attention, global and placed by RoPE; the
UNet families have temporal convolutions, a local operator along time, and on ShapesT2V those were what let a one-shot
temporal LoRA draw a path the base never drew. The kernel gives a DiT block such an operator.

What it computes, per token position (row, column) independently: the block's self-attention input x [B, F·S, C]
(F frames of S tokens) is read as S sequences of F frames, passed through a bottleneck of two 1-D convolutions along
the frames with a GELU between them (C -> rank -> C, ``size`` taps each, zero padding at the clip's ends), and the
result is added to the self-attention's output. This is the public code's layout ("skip" conv1d with a 128-wide
middle and 3 taps, on every block). Its second convolution starts at zero, so a block with a fresh kernel computes
exactly what it computed before. A one-frame clip has no time axis: the kernel then adds nothing (the public code
would still run its centre taps as a per-token MLP; we keep the single-frame path, where the pack teaches the look,
free of the motion adapter).

The module is family-agnostic; where it sits in a model and how a family's tokens split into frames is the family's
(backbones/wan/temporal_kernel.py), and injection is kernels.py.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import InvalidInputError

KEY_PREFIX = "temporal_kernel."
"""File keys of kernel tensors: ``temporal_kernel.<site>.down.weight`` / ``.up.weight`` (site: e.g. ``blocks.0``).
Kept apart from the ``unet.`` LoRA keys so no LoRA reader mistakes them for factors, and a reader that does not know
kernels refuses them by name instead of applying half a LoRA silently."""
PARTS = ("down", "up")


@dataclass(frozen=True)
class KernelSpec:
    """The kernel's shape: ``rank`` middle channels (the public code's 128) and ``size`` taps along the frames (3)."""

    rank: int = 128
    size: int = 3

    def __post_init__(self):
        if int(self.rank) < 1:
            raise InvalidInputError(f"The temporal kernel's rank must be at least 1; got {self.rank}.")
        if int(self.size) < 1 or int(self.size) % 2 == 0:
            raise InvalidInputError(
                f"The temporal kernel's size must be an odd number of frames (1, 3, 5, ...) so it is centred on "
                f"each frame; got {self.size}.")
        object.__setattr__(self, "rank", int(self.rank))
        object.__setattr__(self, "size", int(self.size))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "KernelSpec":
        unknown = set(values) - {"rank", "size"}
        if unknown:
            raise InvalidInputError(f"Temporal kernel metadata has unknown fields {sorted(unknown)}; the file was "
                                    "written by a newer version of the pack.")
        return cls(**values)

    def parameters(self, width: int) -> int:
        """Trainable numbers per site for a block of ``width`` channels: two convolutions of size taps."""
        return 2 * self.size * int(width) * self.rank


def kernel_key(site: str, part: str) -> str:
    return f"{KEY_PREFIX}{site}.{part}.weight"


def split_kernel_key(key: str) -> tuple[str, str] | None:
    """(site, "down"|"up") of a kernel key, None for anything else."""
    if not key.startswith(KEY_PREFIX) or not key.endswith(".weight"):
        return None
    site, _, part = key[len(KEY_PREFIX):-len(".weight")].rpartition(".")
    return (site, part) if site and part in PARTS else None


class TemporalKernel(nn.Module):
    """One site's kernel: ``delta(tokens, frames)`` is what it adds to the self-attention output there.

    Weights are float32 whatever the model's dtype (they train; the input is cast in and the result back, as peft
    keeps LoRA factors). ``enabled`` and ``scale`` are the adapter switches (kernels.py sets them from the registry):
    a disabled kernel or one at scale 0 adds exactly nothing.
    """

    def __init__(self, width: int, spec: KernelSpec, *, device=None):
        super().__init__()
        self.spec = spec
        pad = spec.size // 2
        self.down = nn.Conv1d(width, spec.rank, spec.size, padding=pad, bias=False, device=device, dtype=torch.float32)
        self.up = nn.Conv1d(spec.rank, width, spec.size, padding=pad, bias=False, device=device, dtype=torch.float32)
        # down keeps torch's default (kaiming-uniform, as peft's LoRA A): the public code's N(0, 1) makes the middle
        # channels ~sqrt(3·width) times the token scale (about 120x on a 5120-wide Wan), so its 1e-5 rate is a rate
        # for those; this way the middle stays at the token's scale and the kernel trains at a LoRA's rate.
        nn.init.zeros_(self.up.weight)
        self.enabled = True
        self.scale = 1.0

    @property
    def width(self) -> int:
        return int(self.down.in_channels)

    def forward(self, tokens: torch.Tensor, frames: int) -> torch.Tensor:
        b, n, c = tokens.shape
        per_frame = n // frames
        x = tokens.reshape(b, frames, per_frame, c).permute(0, 2, 3, 1).reshape(b * per_frame, c, frames)
        x = x.to(self.down.weight.dtype)
        y = self.up(F.gelu(self.down(x)))
        return y.reshape(b, per_frame, c, frames).permute(0, 3, 1, 2).reshape(b, n, c)

    def delta(self, tokens: torch.Tensor, frames: int) -> torch.Tensor | None:
        """scale · kernel(tokens) in the tokens' dtype; None where it adds nothing (off, scale 0, one frame)."""
        if not self.enabled or self.scale == 0.0 or frames <= 1:
            return None
        out = self(tokens, frames)
        return (out * self.scale if self.scale != 1.0 else out).to(tokens.dtype)
