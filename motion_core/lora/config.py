"""What one adapter is, as data: the knobs a recipe or a loaded file sets before anything touches a model.

Kept apart from the code that injects it (peft's split of config.py / model.py) so recipes can build, compare and
store specs without a model at hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InvalidInputError
from .temporal_kernel import KernelSpec

KINDS = ("motion", "appearance")


@dataclass(frozen=True)
class AdapterSpec:
    """One named LoRA adapter.

    target_modules: full module names inside the denoiser (as ``named_modules()`` spells them); the backbone's
    ``target_modules(set_name)`` produces them. target_sets: the set names they came from, kept only so the file
    can say what was trained. rank/alpha: the defaults; rank_pattern/alpha_pattern override them per module (full
    module name -> value), which is how files with mixed ranks or alphas load without loss. temporal_kernel: DeT's
    kernel at every block of a DiT, travelling with this adapter (switched, trained, saved and loaded with it).
    """

    name: str
    target_modules: tuple[str, ...]
    rank: int = 16
    alpha: float = 16.0
    dropout: float = 0.0
    kind: str = "motion"
    target_sets: tuple[str, ...] = ()
    rank_pattern: dict[str, int] = field(default_factory=dict)
    alpha_pattern: dict[str, float] = field(default_factory=dict)
    temporal_kernel: KernelSpec | None = None

    def __post_init__(self):
        object.__setattr__(self, "target_modules", tuple(dict.fromkeys(self.target_modules)))
        object.__setattr__(self, "target_sets", tuple(self.target_sets))
        if not self.name or "." in self.name:
            raise InvalidInputError(
                "An adapter needs a non-empty name without dots (peft uses dots as path separators); "
                f"got {self.name!r}."
            )
        if not self.target_modules:
            raise InvalidInputError(
                f"Adapter {self.name!r} has no target modules; pick at least one target set the model has."
            )
        if int(self.rank) < 1:
            raise InvalidInputError(f"Adapter {self.name!r}: rank must be at least 1; got {self.rank}.")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise InvalidInputError(f"Adapter {self.name!r}: dropout must be in [0, 1); got {self.dropout}.")
        if self.kind not in KINDS:
            raise InvalidInputError(f"Adapter {self.name!r}: kind must be one of {KINDS}; got {self.kind!r}.")
        if self.temporal_kernel is not None and not isinstance(self.temporal_kernel, KernelSpec):
            raise InvalidInputError(f"Adapter {self.name!r}: temporal_kernel must be a KernelSpec; got "
                                    f"{type(self.temporal_kernel).__name__}.")
        unknown = set(self.rank_pattern) | set(self.alpha_pattern)
        unknown -= set(self.target_modules)
        if unknown:
            raise InvalidInputError(
                f"Adapter {self.name!r}: per-module rank/alpha given for modules it does not target: "
                f"{sorted(unknown)[:3]}."
            )

    def rank_of(self, module: str) -> int:
        return int(self.rank_pattern.get(module, self.rank))

    def alpha_of(self, module: str) -> float:
        return float(self.alpha_pattern.get(module, self.alpha))
