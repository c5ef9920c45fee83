"""A step range as strength keyframes: the plain-data form of ComfyUI's HookKeyframe lists.

ComfyUI's hook keyframes are (start_percent, strength multiplier) pairs: a keyframe takes over at the first step whose
sigma is at or below the sigma of its start_percent, and holds until the next one does. So "act from 30 % to 80 %" is
three keyframes: off from 0, on from 0.3, off again from 0.8. The off keyframe at 0 is needed because core makes the
first keyframe current from the first step whatever its start_percent.

Why percent of the schedule and not of the step count (as Sample Video's stacks): that is what core's own ranges
mean (ConditioningSetTimestepRange, the hook keyframes), and it survives splitting one schedule over two samplers
(Wan 2.2 A14B's two experts in two KSamplerAdvanced), where a step index would restart at 0 in the second sampler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import InvalidInputError

FULL_RANGE = (0.0, 1.0)


@dataclass(frozen=True)
class StrengthKeyframe:
    """From ``start_percent`` of the schedule on, the LoRA acts at ``multiplier`` times its strength."""

    start_percent: float
    multiplier: float


def check_range(start_percent: float, end_percent: float, what: str = "The LoRA") -> tuple[float, float]:
    start, end = float(start_percent), float(end_percent)
    if not (math.isfinite(start) and math.isfinite(end) and 0.0 <= start <= end <= 1.0):
        raise InvalidInputError(
            f"{what}: the step range must satisfy 0 <= start_percent <= end_percent <= 1; got {start_percent}.."
            f"{end_percent}. Use e.g. 0.0..0.4 for the early (motion) steps.")
    return start, end


def intersect(outer: tuple[float, float], inner: tuple[float, float]) -> tuple[float, float] | None:
    """The part of ``inner`` inside ``outer``; None when they do not overlap (the LoRA would never act)."""
    start, end = max(outer[0], inner[0]), min(outer[1], inner[1])
    return (start, end) if start < end else None


def range_keyframes(start_percent: float, end_percent: float) -> tuple[StrengthKeyframe, ...]:
    """Keyframes that switch a LoRA on over [start, end) of the schedule; () for the full range (no keyframes
    needed: the LoRA is a plain weight patch)."""
    start, end = check_range(start_percent, end_percent)
    if (start, end) == FULL_RANGE:
        return ()
    frames = [StrengthKeyframe(0.0, 0.0)] if start > 0.0 else []
    frames.append(StrengthKeyframe(start, 1.0))
    if end < 1.0:
        frames.append(StrengthKeyframe(end, 0.0))
    return tuple(frames)
