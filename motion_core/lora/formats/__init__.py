"""File layouts a LoRA can be read from or written to; each module converts to and from canonical keys.

canonical: our safetensors (PEFT/diffusers keys + descriptive header); also reads other diffusers/PEFT files.
animatediff: original AnimateDiff motion-LoRA keys (what AnimateDiff-Evolved's "Load AnimateDiff LoRA" reads).
kohya: ``lora_unet_*`` keys with ``.alpha`` (what most appearance-LoRA tools read and write).
"""
