"""Motion-word contrast: a pretraining loss that makes the text-to-video UNet listen to its motion words.

Why: measured on every ShapesT2V model so far, shipped or GPU-trained, the sampled direction of motion is set by the
starting noise alone. The same seed gives the same path for "moves left" and "moves right", and the predicted clean
clip at the first step differs by 0.05-0.12% between the two captions. The model reads a path out of the noise, and
plain denoising gives the motion words little to do, because the path is already visible in the noisy input at
all but the highest noise.

The contrast asks for more. For each training clip, the UNet also denoises the same noisy input under the caption
with its motion phrase swapped for another basic motion. Where the swapped caption fits the frame-to-frame changes
of the target nearly as well as the true one, a hinge adds the shortfall to the loss. Only the swapped prediction
is pushed (the true one is detached), so plain denoising is untouched. The hinge is zero once a wrong motion word
costs `margin` more than the right one, and it covers only timesteps where the path is still undecided.
Measured (FINDINGS.md, "Where the motion comes from"): 300 steps at weight 2 changed neither the motion reliance nor the
prompt share, so it is off by default; with `--shared-noise` it raised the reliance, not the prompt share.
"""

from __future__ import annotations

import random
from dataclasses import replace

import torch

from ..motions import BASIC_MOTIONS
from ..palette import COLOURS
from ..render import ClipSpec
from ..shapes import SHAPES

PARTS = ("colour", "shape", "motion")


def swapped(spec: ClipSpec, part: str, rng: random.Random) -> ClipSpec:
    """The same clip spec with one caption part replaced by a different value of that part."""
    if part == "colour":
        return replace(spec, colour=rng.choice([c for c in COLOURS if c != spec.colour]))
    if part == "shape":
        return replace(spec, shape=rng.choice([s for s in SHAPES if s != spec.shape]))
    if part == "motion":
        return replace(spec, motion=rng.choice([m for m in BASIC_MOTIONS if m != spec.motion]))
    raise ValueError(f"Unknown caption part {part!r}; choose one of {', '.join(PARTS)}.")



# Relative rise of the frame-difference error that a wrong motion word must cause before the hinge lets go.
CONTRAST_MARGIN = 0.1
# The hinge covers timesteps from here up (of 1,000): the noisier 70%, where the path is not yet plain in the input.
CONTRAST_MIN_T = 300


def motion_swapped_captions(specs, seed: int) -> list[str]:
    """One caption per spec with the motion phrase replaced by a different basic motion (seeded)."""
    rng = random.Random(f"motion-contrast:{seed}")
    return [swapped(spec, "motion", rng).text() for spec in specs]


def frame_change_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample MSE ([B]) of consecutive-frame differences of [B, C, F, H, W] tensors: motion, not look."""
    return (pred.diff(dim=2) - target.diff(dim=2)).pow(2).flatten(1).mean(1)


def motion_contrast_loss(pred_true: torch.Tensor, pred_swapped: torch.Tensor, target: torch.Tensor,
                         active: torch.Tensor, margin: float = CONTRAST_MARGIN) -> torch.Tensor:
    """Mean over the batch of relu((1 + margin) * e_true - e_swapped) on the `active` samples ([B] bool), with e
    the `frame_change_error`; e_true is detached, so only the swapped prediction receives a gradient."""
    e_true = frame_change_error(pred_true, target).detach()
    e_swapped = frame_change_error(pred_swapped, target)
    hinge = torch.relu((1.0 + margin) * e_true - e_swapped)
    return (hinge * active.to(hinge.dtype)).mean()
