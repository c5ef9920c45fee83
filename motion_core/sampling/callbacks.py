"""How a caller watches and stops a sampling run: plain callables, so ComfyUI (ProgressBar, interrupt flag), the
trainer's validation previews and the tests all plug in without the engine knowing any of them.

The sampler asks ``should_cancel`` before every model call (each sampling step, each inversion step), so a cancel is
honoured within one step; it then raises CancelledError after putting the base weights back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ..errors import CancelledError

PREVIEW_KINDS = ("rgb", "latents", "none")

ProgressFn = Callable[[int, int, Optional[torch.Tensor]], None]


@dataclass
class SamplingCallbacks:
    """progress(step, total, preview): called after every finished step (``step`` counts from 1; ``total`` includes
    the noise prior's inversion steps when one runs, and those report preview None).

    preview: "rgb" hands a small float [F, h, w, 3] 0..1 picture of the current denoised estimate (see preview.py),
    "latents" hands that estimate's latents [C, F, h, w], "none" hands None (cheapest). preview_every: compute a
    preview only every n-th step (the last step always gets one).
    should_cancel(): return True to stop; checked before each model call.
    """

    progress: ProgressFn | None = None
    should_cancel: Callable[[], bool] | None = None
    preview: str = "rgb"
    preview_every: int = 1

    def __post_init__(self):
        if self.preview not in PREVIEW_KINDS:
            raise ValueError(f"preview must be one of {PREVIEW_KINDS}; got {self.preview!r}.")
        self.preview_every = max(1, int(self.preview_every))

    def wants_preview(self, step: int, total: int) -> bool:
        return self.progress is not None and self.preview != "none" and (
            step % self.preview_every == 0 or step == total)

    def report(self, step: int, total: int, preview: torch.Tensor | None = None) -> None:
        if self.progress is not None:
            self.progress(step, total, preview)

    def check_cancel(self, step: int, total: int) -> None:
        """Raise CancelledError when the caller asked to stop (``step`` = steps finished so far)."""
        if self.should_cancel is not None and self.should_cancel():
            raise CancelledError(
                f"Sampling was cancelled after {step} of {total} steps; the model is back to its base weights."
            )
