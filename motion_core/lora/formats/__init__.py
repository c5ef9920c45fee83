"""File layouts a LoRA can be read from or written to; each module converts to and from canonical keys.

canonical: our safetensors (PEFT/diffusers keys + descriptive header); also reads other diffusers/PEFT files.
animatediff: original AnimateDiff motion-LoRA keys (what AnimateDiff-Evolved's "Load AnimateDiff LoRA" reads).
kohya: ``lora_unet_*`` keys with ``.alpha`` (what most appearance-LoRA tools read and write).
comfyui (wan_comfy): Wan LoRAs in original module names, ComfyUI's native layout (what LoraLoaderModelOnly reads);
also reads ai-toolkit's and musubi-tuner's Wan layouts.
"""
