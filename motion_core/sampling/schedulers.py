"""Sampler choice: a short name -> a fresh diffusers scheduler built from the backbone's own scheduler config.

Two solver families: the DDPM families (ε/v models) take the classic solvers below; flow-matching families (Wan)
take the flow solvers Wan's own pipelines use (UniPC with flow sigmas by default, Euler), with the model's shift.
"auto" is the family's usual choice.

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

FLOW_SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    # Wan's reference pipelines sample with UniPC in flow-sigma mode and the model's shift.
    "unipc": ("UniPCMultistepScheduler", {"prediction_type": "flow_prediction", "use_flow_sigmas": True}),
    "euler": ("FlowMatchEulerDiscreteScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"prediction_type": "flow_prediction", "use_flow_sigmas": True,
                                                 "algorithm_type": "dpmsolver++", "solver_order": 2}),
}
"""Solvers for flow-matching models (Objective.kind == "flow")."""

AUTO = {"ddpm": "ddim", "flow": "unipc"}
SCHEDULER_NAMES = ("auto", *dict.fromkeys([*SCHEDULERS, *FLOW_SCHEDULERS]))
"""Every name any family accepts (what the sampler node lists)."""


def scheduler_names(kind: str) -> tuple[str, ...]:
    """Names a model whose objective is of ``kind`` ("ddpm" or "flow") can sample with."""
    return ("auto", *(FLOW_SCHEDULERS if kind == "flow" else SCHEDULERS))


def check_scheduler(name: str, kind: str) -> str:
    """The solver key for ``name`` ("auto" resolved), or an InvalidInputError listing what this model takes."""
    key = str(name).strip().lower()
    if key not in SCHEDULER_NAMES:
        raise InvalidInputError(f"Unknown scheduler {name!r}; choose one of {', '.join(scheduler_names(kind))}.")
    if key not in scheduler_names(kind):
        family = "flow-matching (Wan)" if kind == "flow" else "this"
        raise InvalidInputError(
            f"Scheduler {name!r} does not work with {family} models; choose one of {', '.join(scheduler_names(kind))}.")
    return AUTO[kind] if key == "auto" else key


def make_scheduler(name: str, base_config: Any, objective=None):
    """A new scheduler of kind ``name`` for a model whose training scheduler has config ``base_config``; with a
    flow-matching ``objective`` its solvers get the model's shift."""
    import diffusers

    kind = getattr(objective, "kind", "ddpm")
    key = check_scheduler(name, kind)
    if kind == "flow":
        class_name, solver = FLOW_SCHEDULERS[key]
        shift = {"shift": objective.shift} if class_name.startswith("FlowMatch") else {"flow_shift": objective.shift}
        return getattr(diffusers, class_name)(num_train_timesteps=objective.num_train_timesteps, **solver, **shift)
    class_name, solver = SCHEDULERS[key]
    cls = getattr(diffusers, class_name)
    # from_config takes what the class knows and ignores the rest (e.g. DDIM's clip_sample for Euler); settings the
    # model's config left at their default are dropped by diffusers, so each solver keeps its own default spacing,
    # exactly as when a diffusers pipeline swaps schedulers.
    return cls.from_config(dict(base_config), **solver)
