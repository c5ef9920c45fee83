"""The device a user asked for, checked before any model is loaded: "cuda" on a machine without a usable GPU
would otherwise surface as torch's driver message in the middle of loading, which names neither the setting nor
what to pick instead."""

from __future__ import annotations

import torch

from .errors import InvalidInputError

# Accelerator kinds we can ask torch about; "cpu" is always there.
_BACKENDS = {
    "cuda": lambda: torch.cuda.is_available(),
    "mps": lambda: torch.backends.mps.is_available(),
    "xpu": lambda: hasattr(torch, "xpu") and torch.xpu.is_available(),
}
_COUNTS = {"cuda": lambda: torch.cuda.device_count(), "xpu": lambda: torch.xpu.device_count()}


def available_devices() -> list[str]:
    """What this machine offers, in the words the options take: ["cpu", "cuda:0", "cuda:1", ...]."""
    found = ["cpu"]
    for kind, ready in _BACKENDS.items():
        if not _safe(ready):
            continue
        if kind in _COUNTS:
            found += [f"{kind}:{i}" for i in range(int(_safe(_COUNTS[kind]) or 0))]
        else:
            found.append(kind)
    return found


def resolve_device(choice, setting: str = "device", also: tuple[str, ...] = ()) -> torch.device:
    """``choice`` ("cpu", "cuda", "cuda:1", a torch.device) as a torch.device this machine has, or an
    InvalidInputError that names what was asked, that it is not there, and what to pick (``also``: choices the
    caller offers besides this machine's devices, e.g. "auto")."""
    if isinstance(choice, torch.device):
        device = choice
    else:
        try:
            device = torch.device(str(choice).strip())
        except (RuntimeError, ValueError):
            raise InvalidInputError(
                f"{setting} {str(choice)[:100]!r} is not a device name. Pick one of: {_offer(also)}.") from None
    if device.type in ("cpu", "meta"):
        return device
    ready = _BACKENDS.get(device.type)
    if ready is None or not _safe(ready):
        raise InvalidInputError(
            f"{setting} {str(choice)!r} was asked for, but this machine has no {device.type.upper()} device that "
            f"torch {torch.__version__} can use (no such GPU, no driver, or a torch built without it). Pick one of: "
            f"{_offer(also)}.")
    count = _safe(_COUNTS[device.type]) if device.type in _COUNTS else None
    if device.index is not None and count is not None and device.index >= count:
        raise InvalidInputError(
            f"{setting} {str(choice)!r} was asked for, but this machine has {count} {device.type.upper()} "
            f"device{'s' if count != 1 else ''}. Pick one of: {_offer(also)}.")
    return device


def _offer(also: tuple[str, ...]) -> str:
    return ", ".join([*also, *available_devices()])


def _safe(probe):
    """A probe that itself fails (a broken driver) means the device is not usable."""
    try:
        return probe()
    except Exception:  # noqa: BLE001 - any driver failure reads as "not available"
        return False
