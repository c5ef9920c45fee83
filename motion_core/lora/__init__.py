"""LoRA adapters for the denoiser: injection, switches, value type and file formats.

Typical use::

    spec = AdapterSpec("temporal", backbone.target_modules("temporal_attn"), rank=32, alpha=32, dropout=0.1,
                       target_sets=("temporal_attn",))
    add_adapter(backbone.denoiser, spec)
    ...train...
    lora = lora_from_adapter(backbone.denoiser, "temporal", family=backbone.family,
                             base_fingerprint=backbone.fingerprint(), recipe="motiondirector")
    save_lora(lora, "dance.safetensors")                  # canonical
    save_lora(lora, "dance_ade.safetensors", "animatediff")  # for AnimateDiff-Evolved
    attach_lora(other.denoiser, load_lora("dance.safetensors"), family=other.family, fingerprint=other.fingerprint())
"""

from .apply import adapter_name_for, attach_lora, check_lora_fits, lora_from_adapter, spec_for
from .config import AdapterSpec
from .control import (
                      adapter_parameters,
                      only_adapters_enabled,
                      set_adapter_enabled,
                      set_adapter_scale,
                      set_adapter_trainable,
                      sync_adapters,
)
from .files import LoraFileError, atomic_write, load_lora, lora_from_tensors, read_tensor_file, save_lora
from .formats.detect import FORMATS, detect_format
from .inject import adapter_names, adapter_state, add_adapter, remove_adapter, remove_all_adapters
from .motion_lora import MotionLora
from .state import adapter_state_dict, canonical_key, load_adapter_state

__all__ = [
    "AdapterSpec", "MotionLora", "LoraFileError", "FORMATS",
    "add_adapter", "remove_adapter", "remove_all_adapters", "adapter_names", "adapter_state",
    "set_adapter_enabled", "set_adapter_scale", "set_adapter_trainable", "sync_adapters", "adapter_parameters",
    "only_adapters_enabled",
    "adapter_state_dict", "load_adapter_state", "canonical_key",
    "attach_lora", "lora_from_adapter", "check_lora_fits", "spec_for", "adapter_name_for",
    "save_lora", "load_lora", "lora_from_tensors", "read_tensor_file", "atomic_write", "detect_format",
]
