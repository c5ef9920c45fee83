"""Architecture fingerprints: which base model a LoRA was trained on, from the denoiser's config alone.

LoRA files record the fingerprint so a LoRA can be checked against the model it is applied to; it is stable across
runs, devices and dtypes because it hashes the public config, never the weights.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from torch import nn

from ..errors import InvalidInputError


def architecture_fingerprint(family: str, denoiser: nn.Module) -> str:
    """sha256 over the family and the denoiser's public config entries (keys starting with '_' hold versions and
    paths, which do not change the architecture), first 16 hex digits."""
    config = getattr(denoiser, "config", None)
    if config is None:
        raise InvalidInputError(f"The {family} denoiser has no config to fingerprint.")
    return config_fingerprint(family, type(denoiser).__name__, dict(config))


def config_fingerprint(family: str, class_name: str, config: dict) -> str:
    """``architecture_fingerprint`` of a denoiser of ``class_name`` with ``config``, without building it (e.g. the
    text-to-video form of an image-to-video model, whose LoRAs apply there too)."""
    public = {k: _jsonable(v) for k, v in config.items() if not k.startswith("_")}
    blob = json.dumps({"family": family, "class": class_name, "config": public}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)
