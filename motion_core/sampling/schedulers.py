"""Sampler choice: a short name -> a fresh diffusers scheduler built from the backbone's own scheduler config.

Building from the backbone's config keeps what the model was trained with (beta schedule, prediction_type, steps
offset, zero-SNR rescaling); only the solver changes. A fresh instance per run matters because multistep solvers
(DPM++ 2M, UniPC) keep history between steps, and the backbone's scheduler is shared with the trainer.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidInputError

SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_ancestral": ("EulerAncestralDiscreteScheduler", {}),
    # DPM++ 2M is DPM-Solver++ of order 2, multistep: the diffusers spelling of k-diffusion's "dpmpp_2m".
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "unipc": ("UniPCMultistepScheduler", {}),
}
"""Name (as the sampler node lists it) -> (diffusers class name, settings that define the solver)."""

SCHEDULER_NAMES = tuple(SCHEDULERS)


def make_scheduler(name: str, base_config: Any):
    """A new scheduler of kind ``name`` for a model whose training scheduler has config ``base_config``."""
    import diffusers

    key = str(name).strip().lower()
    if key not in SCHEDULERS:
        raise InvalidInputError(f"Unknown scheduler {name!r}; choose one of {', '.join(SCHEDULER_NAMES)}.")
    class_name, solver = SCHEDULERS[key]
    cls = getattr(diffusers, class_name)
    # from_config takes what the class knows and ignores the rest (e.g. DDIM's clip_sample for Euler); settings the
    # model's config left at their default are dropped by diffusers, so each solver keeps its own default spacing,
    # exactly as when a diffusers pipeline swaps schedulers.
    return cls.from_config(dict(base_config), **solver)
