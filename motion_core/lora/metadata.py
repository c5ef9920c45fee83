"""The descriptive fields a LoRA carries, and their spelling in a safetensors header (which holds only strings).

Numbers are written as decimal strings and structured fields as JSON, so any tool (or a person running
``safetensors`` by hand) can read them without our code.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import InvalidInputError

FORMAT_NAME = "motion_core.lora"
FORMAT_VERSION = 1

# field -> (type, default). Order is the order written to the header.
FIELDS: dict[str, tuple[type, Any]] = {
    "format_version": (int, FORMAT_VERSION),
    "name": (str, ""),
    "kind": (str, "motion"),
    "family": (str, ""),
    "recipe": (str, ""),
    "rank": (int, 0),
    "alpha": (float, 0.0),
    "alpha_pattern": (dict, {}),
    "target_sets": (list, []),
    "trigger": (str, ""),
    "caption": (str, ""),
    "frames": (int, 0),
    "resolution": (list, []),
    "steps": (int, 0),
    "base_fingerprint": (str, ""),
    "source_format": (str, "canonical"),
    "temporal_kernel": (dict, {}),
    "extra": (dict, {}),
}


def default_metadata() -> dict[str, Any]:
    return {k: (json.loads(json.dumps(d)) if isinstance(d, (dict, list)) else d) for k, (_, d) in FIELDS.items()}


def normalise(metadata: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in and every known field coerced to its type; unknown fields go into ``extra``."""
    out = default_metadata()
    extra = dict(metadata.get("extra") or {})
    for key, value in metadata.items():
        if key == "extra":
            continue
        if key not in FIELDS:
            extra[key] = value
            continue
        kind = FIELDS[key][0]
        try:
            if kind in (dict, list):
                value = kind(value)
            elif kind is int:
                value = int(float(value)) if value not in (None, "") else 0
            elif kind is float:
                value = float(value) if value not in (None, "") else 0.0
            else:
                value = "" if value is None else str(value)
        except (TypeError, ValueError) as err:
            raise InvalidInputError(f"LoRA metadata field {key!r} should be {kind.__name__}; got {value!r}.") from err
        out[key] = value
    out["extra"] = extra
    return out


def encode_header(metadata: dict[str, Any]) -> dict[str, str]:
    """All-string header: ``format`` names us, structured fields are JSON."""
    header = {"format": FORMAT_NAME}
    for key, value in normalise(metadata).items():
        if isinstance(value, (dict, list)):
            header[key] = json.dumps(value, sort_keys=True)
        elif isinstance(value, float):
            header[key] = repr(value)
        else:
            header[key] = str(value)
    return header


def decode_header(header: dict[str, str] | None) -> dict[str, Any] | None:
    """Our fields from a header written by ``encode_header``; None when the header is not ours."""
    if not header or header.get("format") != FORMAT_NAME:
        return None
    raw: dict[str, Any] = {}
    for key, (kind, _) in FIELDS.items():
        if key not in header:
            continue
        value = header[key]
        if kind in (dict, list):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as err:
                raise InvalidInputError(f"LoRA header field {key!r} is not valid JSON: {value[:80]!r}.") from err
        raw[key] = value
    return normalise(raw)
