"""Whether a LoRA's layers fit the weights of a native MODEL, checked before anything is patched.

Core's patcher maps a LoRA by key name only; a layer whose shapes do not match its weight (a LoRA trained on
Wan 14B put on Wan 1.3B, or one layer from another model) is logged and skipped at sampling time, so the video
comes out as if the LoRA were absent. Sample Video refuses such files (lora.check_lora_fits); this is the same
refusal for the native path, naming the layers, with the shapes as plain tuples so no ComfyUI type is needed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..backbones.wan.image_condition import IMAGE_INPUT_LAYER
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
                     model_label: str) -> dict[str, str]:
    """Raise LoraMismatchError naming the layers of LoRA ``name`` whose factors (up, down shapes, by the model's
    weight key) do not fit that weight's shape in ``weights``; a key with no weight counts as not fitting.

    One misfit is expected and returned instead, {weight key: why}, for the caller to leave out and report: a
    text-to-video LoRA's patch embedding on the image-to-video MODEL of its size, which reads the start image's mask
    and latents beside the noise (core itself skips that layer, with an error in its log)."""
    bad, text_to_video = [], {}
    for key, (up, down) in factors.items():
        weight = weights.get(key)
        if weight is None or not fits(up, down, weight):
            reads = _image_input_channels(key, up, down, weight)
            if reads is not None:
                text_to_video[key] = (f"the LoRA reads {reads[0]} input channels, this image-to-video MODEL "
                                      f"{reads[1]}: noise, mask and start-image latents")
                continue
            delta = lora_delta_shape(up, down)
            made = "factors of different ranks" if delta is None else f"makes {list(delta)}"
            has = "has no such weight" if weight is None else f"has {list(weight)}"
            bad.append(f"{_module(key)} (the LoRA {made}, the model {has})")
    if bad:
        bad += [f"{_module(key)} ({why})" for key, why in text_to_video.items()]
        more = f" and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
        raise LoraMismatchError(
            f"LoRA '{name}' does not fit this MODEL ({model_label}): {len(bad)} of its {len(factors)} layers have "
            f"other shapes than the model's weights: {'; '.join(bad[:SHOWN])}{more}. The LoRA was made for a model "
            "of another size (e.g. Wan 14B vs 1.3B, or 2.2 5B); connect the Wan model it was trained on, or use a "
            "LoRA trained for this one. Nothing was applied.")
    if text_to_video and len(text_to_video) == len(factors):
        raise LoraMismatchError(f"LoRA '{name}' adapts only the patch embedding, which this image-to-video MODEL "
                                f"({model_label}) reads differently; nothing of it can apply.")
    return text_to_video


def native_report(name: str, applied: int, left_out: Mapping[str, str]) -> list[str]:
    """What Apply Motion LoRA shows for one LoRA: how many layers it patched, and each layer it left out with why."""
    lines = [f"LoRA '{name}': applied on {applied} layer{'' if applied == 1 else 's'} of this MODEL"]
    lines += [f"LoRA '{name}': not applied: {_module(key)} ({why})" for key, why in left_out.items()]
    return lines


def _image_input_channels(key: str, up: tuple, down: tuple, weight: tuple | None) -> tuple[int, int] | None:
    """(the LoRA's, the model's) input channels when ``key`` is a patch embedding that the LoRA reads narrower than
    the model (a text-to-video LoRA on image-to-video Wan), else None."""
    delta = lora_delta_shape(up, down)
    if key != f"diffusion_model.{IMAGE_INPUT_LAYER}.weight" or weight is None or delta is None or len(weight) < 3:
        return None
    kernel = math.prod(weight[2:])
    if delta[0] != weight[0] or delta[1] % kernel or delta[1] // kernel >= weight[1]:
        return None
    return delta[1] // kernel, int(weight[1])


def _module(key: str) -> str:
    """'diffusion_model.blocks.0.self_attn.q.weight' -> 'blocks.0.self_attn.q', as the user's tools name it."""
    key = key.removeprefix("diffusion_model.")
    return key.removesuffix(".weight")
