"""Plain-Python hooks from the training loop to whoever runs it (the ComfyUI node, the CLI, a test).

ComfyUI's progress bar, interrupt flag and preview widgets reach the engine only through these, so the loop never
imports ComfyUI.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    from ..backbones import Backbone


@dataclass(frozen=True)
class ProgressInfo:
    """After each optimiser step: step is the number of steps done (1-based), losses the step's named terms."""

    step: int
    total_steps: int
    stage: str
    losses: dict[str, float]
    lr: float
    it_per_s: float
    eta_s: float
    elapsed_s: float

    def format(self) -> str:
        terms = " ".join(f"{k}={v:.4f}" for k, v in self.losses.items())
        return (f"step {self.step}/{self.total_steps} [{self.stage}] {terms} lr={self.lr:.2e} "
                f"{self.it_per_s:.2f} it/s ETA {self.eta_s:.0f}s")


@dataclass
class TrainingCallbacks:
    """All optional.

    on_progress(info): after every step. should_cancel(): polled before every step; True saves a checkpoint and
    raises CancelledError. on_validation(step, backbone): every ``validate_every`` steps, with only the motion
    LoRA enabled, the denoiser in eval mode, no grad and the RNG isolated (a preview cannot change the run); the
    caller samples its preview there. on_checkpoint(path): after each checkpoint is written.
    """

    on_progress: Callable[[ProgressInfo], None] | None = None
    should_cancel: Callable[[], bool] | None = None
    on_validation: Callable[[int, "Backbone"], None] | None = None
    on_checkpoint: Callable[[Path], None] | None = None
