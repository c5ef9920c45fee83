"""Optimiser and learning-rate schedule.

The schedule restarts in every stage of a staged recipe (Customize-A-Video's absorber and T-LoRA each get their own
warm-up and decay): each stage trains different weights from scratch, so a schedule spanning both would give the
second stage only the tail of the decay.
"""

from __future__ import annotations

import importlib.util
import math

import torch

from ..recipes import Stage


def build_optimizer(params, *, lr: float, weight_decay: float, choice: str, device: torch.device):
    """AdamW; with choice "auto" the 8-bit AdamW of bitsandbytes when it is importable and training runs on CUDA
    (it quarters optimiser memory), "adamw8bit" requires it. Returns (optimizer, name)."""
    from ..errors import InvalidInputError

    has_bnb = importlib.util.find_spec("bitsandbytes") is not None
    if choice == "adamw8bit" and not (has_bnb and device.type == "cuda"):
        raise InvalidInputError("The 8-bit optimiser needs the bitsandbytes package and a CUDA device; install "
                                "bitsandbytes or choose optimizer 'adamw'.")
    if choice == "adamw8bit" or (choice == "auto" and has_bnb and device.type == "cuda"):
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(params, lr=lr, weight_decay=weight_decay), "adamw8bit"
    # foreach=False: the per-tensor loop gives the same bits whatever the parameter grouping, which keeps CPU
    # runs and resumed runs identical.
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=False), "adamw"


def stage_bounds(stages: list[Stage]) -> list[tuple[Stage, int]]:
    """(stage, index of its first step) pairs."""
    out, start = [], 0
    for stage in stages:
        out.append((stage, start))
        start += stage.steps
    return out


def stage_at(stages: list[Stage], step: int) -> tuple[Stage, int]:
    """The stage that step ``step`` (0-based) belongs to, and the step's index within that stage."""
    for stage, start in stage_bounds(stages):
        if step < start + stage.steps:
            return stage, step - start
    last, start = stage_bounds(stages)[-1]
    return last, step - start


def lr_factor(step: int, stages: list[Stage], schedule: str, warmup: int) -> float:
    """Multiplier of the base lr at 0-based ``step``: linear warm-up over ``warmup`` steps of each stage, then
    constant or a cosine decay to 0 at the stage's end."""
    stage, local = stage_at(stages, step)
    warm = min(warmup, max(stage.steps - 1, 0))
    if local < warm:
        return (local + 1) / (warm + 1)
    if schedule == "cosine":
        progress = (local - warm) / max(1, stage.steps - warm)
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def build_scheduler(optimizer, stages: list[Stage], schedule: str, warmup: int):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, stages, schedule, warmup))
