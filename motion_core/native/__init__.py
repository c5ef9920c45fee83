"""The door to ComfyUI's native graphs, as plain data: which of our LoRAs a native MODEL can take and in what key
layout, when in the schedule each one acts (keyframes), and the reference clip's noise prior as a starting noise.

Nothing here imports ComfyUI: nodes/native.py hands these values to core's patcher, hook and NOISE machinery.
"""

from .fit import check_native_fit, native_report
from .lora_entries import NATIVE_FAMILIES, NativeLora, native_loras, native_state_dict
from .reference_noise import ReferenceNoisePlan, latent_geometry, reference_inversion, reference_start
from .schedule import FULL_RANGE, StrengthKeyframe, range_keyframes

__all__ = [
    "FULL_RANGE", "NATIVE_FAMILIES", "NativeLora", "ReferenceNoisePlan", "StrengthKeyframe", "check_native_fit",
    "native_report",
    "latent_geometry",
    "native_loras", "native_state_dict", "range_keyframes", "reference_inversion", "reference_start",
]
