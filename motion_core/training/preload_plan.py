"""The memory plan before loading: the run's plan made on the model's meta-device backbone (backbones/preload.py),
so a run that cannot fit is refused before a weight is read, with the same words as after loading (auto_memory's
refusal: needed, free, what would fit), and host memory while loading is predicted and checked too.

The plan is the after-loading plan: the same Predictor on the same architecture with the same dtypes (weights counted
exactly, the activation trace on a meta copy either way). Before loading nothing of the model is resident yet, so the
free memory read is the memory the run will have. Where the family cannot be planned before loading,
``plan_before_loading`` says so (NoPlanBeforeLoading) and the caller plans after loading, as before.
"""

from __future__ import annotations

import dataclasses
import os

import torch

from ..backbones.loading import plan_backbone
from .auto_memory import DEFAULT_MARGIN, MemoryPlanError, free_bytes, plan_run
from .memory_plan import MemoryPlan, _gib


def plan_before_loading(path, load_options: dict, recipe, config, settings, device, *, clips: int = 1,
                        available: int | None = None, host_available: int | None = None,
                        margin: float = DEFAULT_MARGIN) -> MemoryPlan:
    """The run's plan for the model at ``path`` as ``load_backbone(path, device="cpu", **load_options)`` would load
    it, with ``loading_host`` filled in; MemoryPlanError when the run or the load cannot fit. ``available`` /
    ``host_available`` override the device's and the host's free memory (on a CPU run they are one memory)."""
    planned = plan_backbone(path, **{**load_options, "device": load_options.get("device", "cpu")})
    plan = plan_run(planned.backbone, recipe, config, settings, device, clips=clips, available=available,
                    margin=margin)
    plan = dataclasses.replace(plan, loading_host=planned.loading_host, planned_from=planned.how)
    if torch.device(device).type == "cpu" and host_available is None:
        host_available = plan.available
    if host_available is None:
        host_available = free_bytes("cpu")
    loaders = local_loaders()
    if host_available is not None and planned.loading_host * loaders * (1.0 + margin) > host_available:
        raise MemoryPlanError(loading_refusal(plan, host_available, load_options, loaders), plan)
    return plan


def local_loaders() -> int:
    """How many processes of this run load the model on this machine at once: under ``accelerate launch`` or
    torchrun every process loads its own copy (LOCAL_WORLD_SIZE), so the host must hold that many loads."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def loading_refusal(plan: MemoryPlan, host_available: int, load_options: dict, loaders: int = 1) -> str:
    """The load itself does not fit the host: what it needs, what is free, and what would take less."""
    needed = int(plan.loading_host * loaders * (1.0 + plan.margin))
    ideas = []
    if not load_options.get("keep_fp8") and plan.parts.get("weights"):
        ideas.append("an fp8 file kept as it stores its weights (--dtype fp8-stored) where the model is one")
    if load_options.get("dtype", torch.float32) == torch.float32:
        ideas.append("bf16 weights (--dtype bf16)")
    if loaders > 1:
        ideas.append(f"fewer processes on this machine (each of the {loaders} loads its own copy)")
    ideas += ["a smaller model", "or free host memory (close other programs)"]
    each = f"{loaders} processes x {_gib(plan.loading_host)}" if loaders > 1 else _gib(plan.loading_host)
    return (f"Loading this model needs about {_gib(needed)} of host memory ({each} predicted + "
            f"{plan.margin:.0%} margin: the weights as loaded and the reader's buffers), but {_gib(host_available)} "
            f"is free; nothing was loaded. What would fit: {', '.join(ideas)}.")


__all__ = ["loading_refusal", "local_loaders", "plan_before_loading"]
