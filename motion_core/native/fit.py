"""Whether a LoRA's layers fit the weights of a native MODEL, checked before anything is patched.

Core's patcher maps a LoRA by key name only; a layer whose shapes do not match its weight (a LoRA trained on
Wan 14B put on Wan 1.3B, or one layer from another model) is logged and skipped at sampling time, so the video
comes out as if the LoRA were absent. Sample Video refuses such files (lora.check_lora_fits); this is the same
refusal for the native path, naming the layers, with the shapes as plain tuples so no ComfyUI type is needed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..errors import LoraMismatchError

SHOWN = 3  # layers named in the message; the count says how many more


def lora_delta_shape(up: tuple, down: tuple) -> tuple[int, int] | None:
    """(out, in) of ``up @ down`` as core computes it (flattened after the first axis); None when the two
    factors do not even multiply (their ranks differ)."""
    up, down = tuple(up), tuple(down)
    if len(up) < 2 or len(down) < 2 or math.prod(up[1:]) != down[0]:
        return None
    return up[0], math.prod(down[1:])


def fits(up: tuple, down: tuple, weight: tuple) -> bool:
    """Core reshapes ``up @ down`` to the weight's shape: out rows must match and the rest must hold as many values."""
    delta = lora_delta_shape(up, down)
    weight = tuple(weight)
    return delta is not None and len(weight) >= 1 and delta == (weight[0], math.prod(weight[1:]))


def check_native_fit(name: str, factors: Mapping[str, tuple[tuple, tuple]], weights: Mapping[str, tuple],
                     model_label: str) -> None:
    """Raise LoraMismatchError naming the layers of LoRA ``name`` whose factors (up, down shapes, by the model's
    weight key) do not fit that weight's shape in ``weights``; a key with no weight counts as not fitting."""
    bad = []
    for key, (up, down) in factors.items():
        weight = weights.get(key)
        if weight is None or not fits(up, down, weight):
            delta = lora_delta_shape(up, down)
            made = "factors of different ranks" if delta is None else f"makes {list(delta)}"
            has = "has no such weight" if weight is None else f"has {list(weight)}"
            bad.append(f"{_module(key)} (the LoRA {made}, the model {has})")
    if bad:
        more = f" and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
        raise LoraMismatchError(
            f"LoRA '{name}' does not fit this MODEL ({model_label}): {len(bad)} of its {len(factors)} layers have "
            f"other shapes than the model's weights: {'; '.join(bad[:SHOWN])}{more}. The LoRA was made for a model "
            "of another size (e.g. Wan 14B vs 1.3B, or 2.2 5B); connect the Wan model it was trained on, or use a "
            "LoRA trained for this one. Nothing was applied.")


def _module(key: str) -> str:
    """'diffusion_model.blocks.0.self_attn.q.weight' -> 'blocks.0.self_attn.q', as the user's tools name it."""
    key = key.removeprefix("diffusion_model.")
    return key.removesuffix(".weight")
