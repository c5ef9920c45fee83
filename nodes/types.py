"""The pack's ComfyUI socket types (prefix MD_), declared once so every node module shares them."""

from comfy_api.latest import io

CATEGORY = "Motion LoRA"

# A set of reference clips for training (motion_core.clips.ClipSet); chainable through `previous_clips`.
ClipsType = io.Custom("MD_CLIPS")

# A loaded text-to-video model (motion_core.backbones.Backbone).
ModelType = io.Custom("MD_MODEL")

# One trained or loaded LoRA (motion_core.lora.MotionLora): tensors + metadata.
LoraType = io.Custom("MD_LORA")

# An ordered stack of (LoRA, strength, start %, end %) for sampling (motion_core.lora.stack.LoraStack).
LoraStackType = io.Custom("MD_LORA_STACK")
