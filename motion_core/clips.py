"""Reference clips: the unit of training data that flows from the video loader to the trainer."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from .errors import InvalidInputError


@dataclass(frozen=True)
class Clip:
    """One reference clip.

    frames: uint8 tensor [F, H, W, 3] on the CPU (uint8 keeps long clips small in RAM; the trainer converts).
    fps: frames per second after any resampling. caption: what the clip shows, used as its training prompt.
    """

    frames: torch.Tensor
    fps: float
    caption: str = ""
    source: str = ""

    def __post_init__(self):
        f = self.frames
        if not isinstance(f, torch.Tensor) or f.dtype != torch.uint8 or f.ndim != 4 or f.shape[-1] != 3:
            raise InvalidInputError(
                "A clip needs frames as a uint8 tensor [frames, height, width, 3]; got "
                f"{getattr(f, 'dtype', type(f))} with shape {tuple(getattr(f, 'shape', ()))}."
            )
        if f.shape[0] == 0:
            raise InvalidInputError("A clip needs at least one frame; this one has none.")
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise InvalidInputError(f"A clip's fps must be a finite positive frame rate; got {self.fps}. Use e.g. 8.")

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.frames.shape[2]), int(self.frames.shape[1])

    def as_image(self) -> torch.Tensor:
        """Frames as ComfyUI IMAGE: float32 [F, H, W, 3] in 0..1."""
        return self.frames.float().div_(255.0)

    @classmethod
    def from_image(cls, image: torch.Tensor, fps: float, caption: str = "", source: str = "") -> "Clip":
        """Build a clip from a ComfyUI IMAGE batch (float [F, H, W, C] in 0..1; alpha is dropped)."""
        if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[-1] not in (3, 4):
            raise InvalidInputError(
                "Expected an IMAGE batch shaped [frames, height, width, 3]; got shape "
                f"{tuple(getattr(image, 'shape', ()))}. Connect a video loader or an image batch."
            )
        frames = (image[..., :3].detach().float().cpu().clamp(0, 1) * 255.0).round().to(torch.uint8)
        return cls(frames=frames, fps=float(fps), caption=caption, source=source)


@dataclass(frozen=True)
class ClipSet:
    """An ordered set of reference clips (the MD_CLIPS value); chaining appends without mutating."""

    clips: tuple[Clip, ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self):
        return iter(self.clips)

    def __str__(self) -> str:
        lines = [f"{len(self.clips)} reference clip(s)"]
        for i, c in enumerate(self.clips):
            w, h = c.size
            lines.append(f"{i + 1}. {c.num_frames} frames {w}x{h} @ {c.fps:g} fps: {c.caption or '(no caption)'}")
        return "\n".join(lines)

    def add(self, clip: Clip) -> "ClipSet":
        return ClipSet(self.clips + (clip,))

    def extend(self, other: "ClipSet | None") -> "ClipSet":
        return self if other is None else ClipSet(self.clips + other.clips)
