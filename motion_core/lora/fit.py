"""Which part of a LoRA applies to a model: all of it, or, for a LoRA of a related base (a text-to-video Wan's LoRA on
its image-to-video form), the layers the two models share, with the rest named in a report.

A LoRA of this model's own base, or of an unknown base, must fit whole (check_lora_fits): a layer that does not fit
means the wrong model and is an error. A related base is one the model family declares (Backbone.related_bases);
its LoRAs are cut to the layers that exist here with the same shapes and the cut is reported, never silent. A LoRA
that records no base and misses only the layers in which the related base differs (e.g. a text-to-video LoRA from
another tool that also trained the patch embedding) is treated the same way.
"""

from __future__ import annotations

from ..errors import LoraMismatchError
from .apply import _expected_shapes, _same_or_flat, check_lora_fits
from .inject import SUPPORTED_LAYERS, base_layer
from .motion_lora import MotionLora
from .state import canonical_key, patch_key

SHOWN = 3


def fit_lora(model, lora: MotionLora, *, family: str | None = None, fingerprint: str | None = None,
             strict_base: bool = True, related=()) -> tuple[MotionLora, tuple[str, ...]]:
    """(the part of ``lora`` that applies to ``model``, what was left out and why, one phrase per line).

    ``related``: the model's RelatedBase values. Raises LoraMismatchError exactly where check_lora_fits does for
    every LoRA that is not a related base's."""
    base = next((r for r in related if lora.base_fingerprint and r.fingerprint == lora.base_fingerprint), None)
    recorded = base is not None
    found = dict(model.named_modules())
    misfits = _misfits(found, lora)
    if base is None and not lora.base_fingerprint and misfits:
        differing = {layer for r in related for layer in r.differing}
        if all(_layer(key) in differing for key in misfits):
            base = next((r for r in related if {_layer(key) for key in misfits} <= set(r.differing)), None)
    if base is None or (family and lora.family and family != lora.family):
        check_lora_fits(model, lora, family=family, fingerprint=fingerprint, strict_base=strict_base)
        return lora, ()
    name = lora.name or "(unnamed)"
    dropped = {_layer(key) for key in misfits if key.endswith(".lora_A.weight")}
    if dropped >= set(lora.modules()):
        raise LoraMismatchError(
            f"LoRA '{name}' was made for {base.label} but none of its layers fits this model; use a LoRA trained "
            "for this model.")
    kept = _without(lora, dropped, misfits)
    layers, applied = (len({*m.modules(), *m.patched_modules()}) for m in (lora, kept))
    origin = f"was trained on {base.label}" if recorded else f"has layers shaped for {base.label}"
    said = f"LoRA '{name}' {origin}: applied on the {applied} of its {layers} layers this model shares"
    notes = [said]
    if misfits:
        shown = "; ".join(f"{_layer(key)} ({why})" for key, why in list(misfits.items())[:SHOWN])
        more = f" and {len(misfits) - SHOWN} more" if len(misfits) > SHOWN else ""
        notes.append(f"LoRA '{name}': not applied: {shown}{more}")
    return kept, tuple(notes)


def _misfits(found: dict, lora: MotionLora) -> dict[str, str]:
    """{LoRA key (lora_A or .diff / .diff_b): why it cannot apply here} for every part that does not fit."""
    out = {}
    for module in lora.modules():
        key = canonical_key(module, "A")
        layer = base_layer(found[module]) if module in found else None
        if layer is None:
            out[key] = "this model has no such layer"
        elif not isinstance(layer, SUPPORTED_LAYERS):
            out[key] = f"a {type(layer).__name__} here"
        else:
            a, b = lora.weights(module)
            want_a, want_b = _expected_shapes(layer, lora.module_rank(module))
            if not (_same_or_flat(a.shape, want_a) and _same_or_flat(b.shape, want_b)):
                out[key] = f"made for input {tuple(a.shape[1:])}, this layer takes {want_a[1:]}"
    for module in lora.patched_modules():
        layer = base_layer(found[module]) if module in found else None
        for parameter in ("weight", "bias"):
            patch = lora.patch(module, parameter)
            target = getattr(layer, parameter, None) if layer is not None else None
            if patch is not None and (target is None or tuple(target.shape) != tuple(patch.shape)):
                have = "no such parameter here" if target is None else f"{tuple(target.shape)} here"
                out[patch_key(module, parameter)] = f"shape {tuple(patch.shape)}, {have}"
    return out


def _layer(key: str) -> str:
    """'unet.patch_embedding.lora_A.weight' / 'unet.patch_embedding.diff' -> 'patch_embedding'."""
    key = key.removeprefix("unet.")
    for suffix in (".lora_A.weight", ".diff_b", ".diff"):
        if key.endswith(suffix):
            return key[: -len(suffix)]
    return key


def _without(lora: MotionLora, dropped: set[str], misfits: dict[str, str]) -> MotionLora:
    """``lora`` without the factors of the ``dropped`` layers and the patches in ``misfits``."""
    tensors = {k: v for k, v in lora.tensors.items() if _layer_of_factor(k) not in dropped}
    patches = {k: v for k, v in lora.patches.items() if k not in misfits}
    meta = dict(lora.metadata)
    meta["alpha_pattern"] = {m: a for m, a in meta.get("alpha_pattern", {}).items() if m not in dropped}
    return MotionLora(tensors, meta, patches)


def _layer_of_factor(key: str) -> str:
    return key.removeprefix("unet.").rsplit(".lora_", 1)[0]
