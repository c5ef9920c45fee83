"""The peft LoraConfig a diffusers/peft LoRA file carries in its header, applied per module the way peft applies it.

Where it is: diffusers writes the config as JSON under the header key ``lora_adapter_metadata``. A model's own
``save_lora_adapter`` writes the bare config (``{"r": 4, "lora_alpha": 8, ...}``); a pipeline's ``save_lora_weights``
(``_save_lora_weights``) prefixes every field with its component (``{"transformer.r": 4, "transformer.lora_alpha":
8, "transformer.alpha_pattern": {...}}``), and on loading keeps only the fields of the component it loads
(``transformer.`` or ``unet.``) with the prefix removed. When the config is there, diffusers builds
``LoraConfig(**config)`` from it and nothing else, so it decides every module's scale.

What a module gets (peft's ``LoraModel._create_and_replace``): its rank and alpha come from the first key of
``rank_pattern`` / ``alpha_pattern``, in the dict's order, that matches the module's full name as the regex
``(.*\\.)?(<key>)$`` (``get_pattern_key``), else from ``r`` / ``lora_alpha`` (LoraConfig's defaults when absent);
the scale is ``alpha / r``, or ``alpha / sqrt(r)`` with ``use_rslora``. The pack scales by ``alpha / rank`` with the
rank taken from the weights, so a module's alpha is stored as peft's scale times that rank.
"""

from __future__ import annotations

import json
import math
import re

from ...errors import LoraFileError

METADATA_KEY = "lora_adapter_metadata"
COMPONENTS = ("transformer", "unet")


def _peft_default(field: str, fallback: float) -> float:
    """LoraConfig's own default for ``field`` (8 for r and lora_alpha in every peft release so far)."""
    try:
        from peft import LoraConfig

        return LoraConfig.__dataclass_fields__[field].default
    except (ImportError, KeyError):  # pragma: no cover - peft is a dependency of the pack
        return fallback


def adapter_config(header: dict[str, str] | None, component: str | None) -> dict | None:
    """The LoraConfig fields that apply to ``component``'s weights ("transformer", "unet" or None for unprefixed
    keys), or None when the header carries no config for them."""
    raw = (header or {}).get(METADATA_KEY)
    if not raw:
        return None
    try:
        blob = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        blob = None
    if not isinstance(blob, dict):
        raise LoraFileError(
            f"the header field {METADATA_KEY!r} is not a JSON table ({raw[:60]!r}); it should hold the LoRA's peft "
            "config. Re-save the LoRA with diffusers, or remove that header field to read it at scale alpha = rank."
        )
    prefixed = {k for k in blob if k.split(".", 1)[0] in (*COMPONENTS, "text_encoder", "text_encoder_2")
                and "." in k}
    if not prefixed:
        return blob
    # diffusers keeps only the loaded component's fields; weights without a prefix may be either component's
    for name in [component] if component else COMPONENTS:
        fields = {k[len(name) + 1:]: v for k, v in blob.items() if k.startswith(f"{name}.")}
        if fields:
            return fields
    return None


def pattern_key(patterns, module: str) -> str | None:
    """The first key of ``patterns`` that peft would match to ``module`` (see the module docstring), else None."""
    for key in patterns:
        try:
            if re.match(rf"(.*\.)?({key})$", module):
                return key
        except re.error as err:
            raise LoraFileError(
                f"the LoRA's peft config has the pattern {key!r}, which is not a valid regular expression ({err}). "
                "Fix its rank_pattern / alpha_pattern in the header, or re-save the LoRA with diffusers."
            ) from None
    return None


def _number(config: dict, field: str, default: float) -> float:
    value = config.get(field)
    value = default if value is None else value
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not math.isfinite(number):
        raise LoraFileError(
            f"the LoRA's peft config gives {field} = {value!r}, not a finite number. Fix the header's "
            f"{METADATA_KEY} or re-save the LoRA."
        )
    return number


def module_alphas(config: dict, ranks: dict[str, int]) -> dict[str, float]:
    """module -> the alpha that makes the pack's ``alpha / rank`` equal peft's scale for it under ``config``.

    A module whose weights' rank differs from the rank the config gives it is an error: diffusers would refuse to
    load those weights into the layer peft builds, so the header does not describe this file."""
    if config.get("use_dora"):
        raise LoraFileError(
            "the LoRA's peft config says use_dora: it is a DoRA, whose magnitude vectors the pack cannot apply. "
            "Use a plain LoRA, or apply this one with diffusers."
        )
    rank_pattern = config.get("rank_pattern") or {}
    alpha_pattern = config.get("alpha_pattern") or {}
    if not isinstance(rank_pattern, dict) or not isinstance(alpha_pattern, dict):
        raise LoraFileError(
            f"the LoRA's peft config has a rank_pattern / alpha_pattern that is not a table of module patterns. "
            f"Fix the header's {METADATA_KEY} or re-save the LoRA."
        )
    r = _number(config, "r", _peft_default("r", 8))
    alpha = _number(config, "lora_alpha", _peft_default("lora_alpha", 8))
    rslora = bool(config.get("use_rslora"))
    out = {}
    for module, rank in ranks.items():
        r_key, alpha_key = pattern_key(rank_pattern, module), pattern_key(alpha_pattern, module)
        module_r = _number(rank_pattern, r_key, r) if r_key is not None else r
        module_alpha = _number(alpha_pattern, alpha_key, alpha) if alpha_key is not None else alpha
        if int(module_r) != rank:
            where = f"rank_pattern[{r_key!r}]" if r_key is not None else "r"
            raise LoraFileError(
                f"module {module!r} has rank {rank} in the weights, but the header's peft config gives it rank "
                f"{module_r:g} ({where}); diffusers would refuse these weights. The header belongs to another "
                f"LoRA: fix or remove its {METADATA_KEY} field, or re-save the LoRA with diffusers."
            )
        scale = module_alpha / (math.sqrt(module_r) if rslora else module_r)
        out[module] = scale * rank
    return out
