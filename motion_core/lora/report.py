"""What of a LoRA file the pack applies and what it leaves out, in words for the node and the sampling result.

Why a report and not an error: a file from another tool often carries parts aimed elsewhere (a text-encoder LoRA
beside the video model's). Refusing the whole file would throw away the part the pack can apply; dropping the rest
silently would make "it looks weaker than in ComfyUI" impossible to explain. So the loader keeps what it can apply
and every surface that shows the LoRA says what was left out.
"""

from __future__ import annotations

from .formats.wan_comfy import KERNEL_LEFT_OUT
from .motion_lora import MotionLora


def left_out(lora: MotionLora) -> list[str]:
    """Parts of ``lora``'s file that were read but are not applied, one phrase each (empty when none); and a DeT
    temporal kernel that the file's writer had to leave out (a ``comfyui`` export holds the LoRA part only)."""
    extra = lora.metadata.get("extra") or {}
    skipped = extra.get("skipped_components") or []
    phrases = [f"its {part} part (this pack adapts the video model only)" for part in skipped]
    if extra.get(KERNEL_LEFT_OUT) and not lora.kernel:
        phrases.append("its DeT temporal kernel, which this comfyui file does not hold (load the canonical file for "
                       "the whole LoRA)")
    return phrases


def carried(lora: MotionLora) -> list[str]:
    """Parts applied beyond the LoRA factors, one phrase each: the full-weight patches some tools train, a DeT
    temporal kernel."""
    phrases = []
    if lora.kernel:
        spec = lora.kernel_spec
        phrases.append(f"a DeT temporal kernel (rank {spec.rank}, {spec.size} taps) in {len(lora.kernel_sites())} "
                       "blocks, injected for the run (core's LoraLoaderModelOnly applies the LoRA part only)")
    if not lora.patches:
        return phrases
    biases = sum(1 for m in lora.patched_modules() if lora.patch(m, "bias") is not None)
    weights = sum(1 for m in lora.patched_modules() if lora.patch(m, "weight") is not None)
    phrase = (f"full-weight patches on {len(lora.patched_modules())} layers ({weights} weights (.diff), {biases} "
              "biases (.diff_b)), merged into the model when sampling")
    return [*phrases, phrase]


def stack_left_out(stack) -> tuple[str, ...]:
    """``left_out`` of every entry of a LoRA stack, each phrase naming its LoRA (what a sampling result reports)."""
    return tuple(f"LoRA '{entry.lora.name or '(unnamed)'}': not applied: {part}"
                 for entry in stack for part in left_out(entry.lora))


def stack_note(stack, lora: MotionLora) -> str:
    """What a LoRA loader node shows: the stack, then what of the new LoRA's file is applied beyond its factors and
    what is not applied."""
    lines = [str(stack)]
    lines += [f"also applied: {part}" for part in carried(lora)]
    lines += [f"not applied: {part}" for part in left_out(lora)]
    return "\n".join(lines)
