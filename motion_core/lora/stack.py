"""LoraStack: the ordered list of (LoRA, strength, start %, end %) a user builds to sample with (MD_LORA_STACK).

A stack is a value: ``add`` returns a new stack, so a ComfyUI graph that branches from one stack node cannot have one
branch change what another sees. The step ranges let a motion LoRA act only in the early, high-noise steps where
motion forms, and an appearance LoRA only in the later steps where detail forms; ``segments`` turns the ranges into
runs of steps with one fixed set of active entries, which is what the sampler merges into the weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

from ..errors import InvalidInputError
from .motion_lora import MotionLora


@dataclass(frozen=True, eq=False)
class LoraStackEntry:
    """One LoRA in a stack. Strength multiplies alpha/rank (negative strengths push away from the LoRA's effect).

    The entry acts on sampling step i of n when ``start_percent <= i / n < end_percent``: i / n is the share of the
    steps already done, so 0..1 covers every step and 0..0.5 covers exactly the first half.
    """

    lora: MotionLora
    strength: float = 1.0
    start_percent: float = 0.0
    end_percent: float = 1.0

    def __post_init__(self):
        if not isinstance(self.lora, MotionLora):
            raise InvalidInputError(f"A LoRA stack holds MotionLora values; got {type(self.lora).__name__}.")
        for field_name in ("strength", "start_percent", "end_percent"):
            value = float(getattr(self, field_name))
            if not math.isfinite(value):
                raise InvalidInputError(f"LoRA '{self.lora.name}': {field_name} must be a finite number; got {value}.")
            object.__setattr__(self, field_name, value)
        if not 0.0 <= self.start_percent <= self.end_percent <= 1.0:
            raise InvalidInputError(
                f"LoRA '{self.lora.name}': the step range must satisfy 0 <= start_percent <= end_percent <= 1; got "
                f"{self.start_percent}..{self.end_percent}. Use e.g. 0.0..0.4 for the early (motion) steps."
            )

    def active_at(self, step: int, total_steps: int) -> bool:
        """Whether this entry changes the weights at 0-based ``step`` of ``total_steps`` (strength 0 never does)."""
        if self.strength == 0.0:
            return False
        done = step / total_steps
        return self.start_percent <= done < self.end_percent

    def __repr__(self) -> str:
        return (f"LoraStackEntry({self.lora.name!r}, strength={self.strength}, "
                f"range={self.start_percent}..{self.end_percent})")


@dataclass(frozen=True)
class StackSegment:
    """Steps ``start_step`` (inclusive) to ``end_step`` (exclusive) run with the entries at ``active`` (indices into
    the stack, in stack order); an empty ``active`` means the base weights."""

    start_step: int
    end_step: int
    active: tuple[int, ...]


@dataclass(frozen=True)
class LoraStack:
    """An ordered, immutable list of LoraStackEntry values; an empty stack samples the model as it is."""

    entries: tuple[LoraStackEntry, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "entries", tuple(self.entries))
        for entry in self.entries:
            if not isinstance(entry, LoraStackEntry):
                raise InvalidInputError(f"LoraStack entries must be LoraStackEntry values; got {type(entry).__name__}.")

    def add(self, lora: MotionLora, strength: float = 1.0, start_percent: float = 0.0,
            end_percent: float = 1.0) -> "LoraStack":
        """A new stack with one more entry at the end (this one is unchanged)."""
        return LoraStack(self.entries + (LoraStackEntry(lora, strength, start_percent, end_percent),))

    def extend(self, other: "LoraStack | None") -> "LoraStack":
        """A new stack with ``other``'s entries after this one's (chaining two stack nodes)."""
        return self if other is None else LoraStack(self.entries + other.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[LoraStackEntry]:
        return iter(self.entries)

    def __getitem__(self, index: int) -> LoraStackEntry:
        return self.entries[index]

    def active_at(self, step: int, total_steps: int) -> tuple[int, ...]:
        """Indices of the entries acting at ``step`` of ``total_steps``."""
        return tuple(i for i, e in enumerate(self.entries) if e.active_at(step, total_steps))

    def segments(self, total_steps: int) -> list[StackSegment]:
        """The steps split into maximal runs with the same active entries (one merge per run)."""
        if total_steps < 1:
            raise InvalidInputError(f"Sampling needs at least one step; got {total_steps}.")
        segments: list[StackSegment] = []
        for step in range(total_steps):
            active = self.active_at(step, total_steps)
            if segments and segments[-1].active == active:
                last = segments[-1]
                segments[-1] = StackSegment(last.start_step, step + 1, active)
            else:
                segments.append(StackSegment(step, step + 1, active))
        return segments

    def __str__(self) -> str:
        if not self.entries:
            return "LoraStack(empty)"
        lines = [f"  {e.lora.name or '(unnamed)'} [{e.lora.kind}] x{e.strength:g} "
                 f"steps {e.start_percent:.0%}..{e.end_percent:.0%}" for e in self.entries]
        return "LoraStack(\n" + "\n".join(lines) + "\n)"
