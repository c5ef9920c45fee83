"""What a recipe is: knobs as data (a config dataclass) plus a small class that says what is learned and how.

The shared trainer owns everything that is the same for every method (caching, optimiser, checkpoints, callbacks);
a recipe only declares its adapters, its stages, its timestep sampler, its training-caption rule and one training
step that computes its named loss terms. That keeps a new method to one file and one registry line.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from ..errors import InvalidInputError
from ..lora import AdapterSpec
from . import timesteps as timestep_samplers

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..backbones import Backbone
    from ..training.context import StepContext


@dataclass(frozen=True)
class RecipeConfig:
    """Knobs every recipe has; subclasses change the defaults to their paper's and add their own knobs.

    The trainer's TrainingConfig may override steps, lr, rank, alpha, weight_decay, dropout, grad_clip and
    timestep_skew; whatever it leaves unset (None) comes from here.
    """

    steps: int = 300
    lr: float = 1e-4
    weight_decay: float = 1e-2
    rank: int = 32
    alpha: float | None = None
    """None: alpha = rank (scale 1), the convention of the reference implementations."""
    dropout: float = 0.0
    grad_clip: float = 1.0
    lr_schedule: str = "constant"
    timestep_skew: float = 1.0
    """k of the training noise levels t = floor(T · u^(1/k)): 1 = uniform (the papers' law), k > 1 favours high
    noise, where a clip's motion is decided (NewMove uses 2; timesteps.skewed)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RecipeConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise InvalidInputError(
                f"{cls.__name__} has no option(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}."
            )
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def for_clip_count(self, num_clips: int) -> "RecipeConfig":
        """The config adjusted to the number of reference clips (MotionDirector changes steps and weight decay)."""
        return self


@dataclass(frozen=True)
class Stage:
    """A span of steps with its own name (the recipe's step branches on it) and its own LR warm-up/decay."""

    name: str
    steps: int


class Recipe(ABC):
    """One motion-customisation method over the shared trainer.

    Subclasses set ``name`` and ``config_class`` and implement ``adapters`` and ``step``; the other hooks have the
    common defaults (one stage, uniform timesteps, the clip's caption or the given training caption).
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type[RecipeConfig]] = RecipeConfig
    motion_adapter: ClassVar[str] = "temporal"
    """The adapter saved as the motion LoRA (what is used at inference)."""
    uses_regularisation_clips: ClassVar[bool] = False
    uses_clip_extras: ClassVar[bool] = False
    """Whether ``clip_extras`` computes something (the trainer then hands it each reference clip's frames)."""

    def __init__(self, config: RecipeConfig | None = None, **overrides):
        config = config if config is not None else self.config_class()
        if not isinstance(config, self.config_class):
            raise InvalidInputError(
                f"Recipe {self.name!r} needs a {self.config_class.__name__}; got {type(config).__name__}."
            )
        self.config = replace(config, **overrides) if overrides else config

    # ---- declarations ---------------------------------------------------------------------------------------
    @abstractmethod
    def adapters(self, backbone: "Backbone", num_clips: int, *, rank: int, alpha: float,
                 dropout: float) -> list[AdapterSpec]:
        """The adapters this method trains, built from the backbone's named target sets."""

    def appearance_adapters(self, num_clips: int) -> list[str]:
        """Adapters saved as appearance LoRAs (by-products the user may stack to copy the reference look)."""
        return []

    @property
    def regularisation_ratio(self) -> float:
        """Share of steps drawn from regularisation clips (only recipes with uses_regularisation_clips)."""
        return 0.0

    def stages(self, total_steps: int) -> list[Stage]:
        return [Stage("main", total_steps)]

    def sample_timesteps(self, generator: torch.Generator, num_train_timesteps: int, n: int = 1) -> torch.Tensor:
        k = self.config.timestep_skew
        if k == 1:  # the uniform draw itself, so runs without a skew replay exactly as before it existed
            return timestep_samplers.uniform(generator, num_train_timesteps, n)
        return timestep_samplers.skewed(generator, num_train_timesteps, n, k)

    def training_caption(self, clip_caption: str, training_caption: str | None) -> str:
        """The prompt a reference clip is trained with: the node's training caption when given, else the clip's."""
        return training_caption if training_caption else clip_caption

    def extra_prompts(self, caption: str) -> dict[str, str]:
        """Further prompts per clip whose text states the trainer caches up front (MotionCrafter's appearance
        prior); keys reach ``step`` as ``ctx.sample.extra_text``."""
        return {}

    def clip_extras(self, backbone: "Backbone", video: torch.Tensor, latents: torch.Tensor) -> dict[str, Any]:
        """Per-clip data computed once when the trainer caches a reference clip (video float [F, H, W, 3] at the
        training size, latents [1, C, F', h, w]); reaches ``step`` as ``ctx.sample.extras``."""
        return {}

    # ---- the training step ----------------------------------------------------------------------------------
    @abstractmethod
    def step(self, ctx: "StepContext") -> dict[str, torch.Tensor]:
        """One training sample: forward pass(es) and ``ctx.backward`` for each loss; returns the detached loss
        terms by name plus "total" (what the progress bar and loss plot show)."""

    def describe(self) -> str:
        return f"{self.name}: {self.config}"


def target_modules(backbone: "Backbone", set_names, *, optional=()) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(module names, set names used) for the named target sets; ``optional`` sets are used only where the family
    has them (e.g. UNet3D's transformer_in), the others must exist."""
    modules: list[str] = []
    used: list[str] = []
    for set_name in (*set_names, *optional):
        if set_name in optional and set_name not in backbone.target_sets:
            continue
        modules.extend(backbone.target_modules(set_name))
        used.append(set_name)
    # Joint space-time attention (DiTs) is both spatial_self_attn and temporal_attn: one module, listed once.
    return tuple(dict.fromkeys(modules)), tuple(used)


def temporal_spec(backbone: "Backbone", *, conv: bool, rank: int, alpha: float, dropout: float) -> AdapterSpec:
    """The temporal LoRA of MotionDirector and MotionCrafter: the temporal attention plus, where the family has
    them, its ff, transformer_in and (``conv``) the temporal convolutions. DiTs have none of those: there it is the
    joint self-attention alone."""
    optional = ("temporal_ff", "transformer_in", *(("temporal_conv",) if conv else ()))
    return spec(backbone, "temporal", ("temporal_attn",), optional=optional, rank=rank, alpha=alpha, dropout=dropout)


def beside_temporal(backbone: "Backbone", set_names) -> tuple[str, ...]:
    """``set_names`` without the sets whose modules are the temporal LoRA's own (``temporal_attn``).

    A spatial LoRA trained *in parallel* with the temporal one (MotionCrafter) on the very same modules would be a
    second copy of it, not a spatial adapter. On UNets spatial and temporal modules never coincide, so this keeps
    every set; on a DiT the joint self-attention drops out and the spatial LoRA keeps the frame-local modules (ff),
    as METHODS.md reads MotionCrafter for DiTs. Sequential recipes (MotionDirector, Customize-A-Video) keep both
    adapters on one module, switched by name."""
    temporal = set(backbone.target_modules("temporal_attn"))
    return tuple(s for s in set_names if not temporal.intersection(backbone.target_modules(s)))


def spec(backbone: "Backbone", name: str, set_names, *, rank: int, alpha: float, dropout: float,
         kind: str = "motion", optional=()) -> AdapterSpec:
    """An AdapterSpec over the named target sets of ``backbone``."""
    modules, used = target_modules(backbone, set_names, optional=optional)
    return AdapterSpec(name, modules, rank=rank, alpha=alpha, dropout=dropout, kind=kind, target_sets=used)
