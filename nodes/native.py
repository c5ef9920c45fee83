"""Nodes that carry the pack's motion tools onto ComfyUI's native types: LoRAs with step ranges onto a MODEL, and the
reference clip's noise prior as a NOISE, so core's KSampler / SamplerCustomAdvanced graphs can use them.

The step ranges use core's own hook machinery (comfy.hooks WeightHook + HookKeyframe, as Create Hook LoRA and
Set Hook Keyframes do). Core attaches hooks to CONDITIONING, not to a MODEL; so that a MODEL carries them, the
patched model holds its hook group as an attachment and an OUTER_SAMPLE wrapper puts it on every cond of each run
it samples, after core registered the conds' own hooks and before it prepares the conds (which resets the
keyframes). From there core does the rest: keyframe switching per step, patching and restoring the weights.
"""

from __future__ import annotations

import comfy.hooks
import comfy.lora
import comfy.model_management
import comfy.patcher_extension
import comfy.sample
from comfy_api.latest import io, ui

from ..motion_core.errors import CancelledError, InvalidInputError, LoraMismatchError
from ..motion_core.native import (NativeLora, ReferenceNoisePlan, check_native_fit, native_loras, native_report,
                                  range_keyframes, reference_inversion, reference_start)
from ..motion_core.native.temporal_kernel_patch import native_kernels
from ..motion_core.sampling import NOISE_PRIOR_MODES, SamplingCallbacks
from .native_kernel import apply_native_kernels
from .progress import interrupted
from .types import CATEGORY, ClipsType, LoraStackType, LoraType, ModelType

HOOKS_KEY = "motion_customization.lora_step_ranges"


def _native_patches(model, entry: NativeLora) -> tuple[dict, list[str]]:
    """The LoRA as core's patch dict for this MODEL, and the report of what it applies; every layer must find its
    weight, none silently dropped (a text-to-video LoRA's patch embedding on image-to-video Wan is left out, and
    said)."""
    key_map = comfy.lora.model_lora_keys_unet(model.model, {})
    patches = comfy.lora.load_lora(entry.state_dict, key_map, log_missing=False)
    if len(patches) != entry.modules:
        raise LoraMismatchError(
            f"LoRA '{entry.name}': {entry.modules - len(patches)} of its {entry.modules} layers have no weight in "
            f"this MODEL ({type(model.model).__name__}). It is a Wan LoRA: connect a Wan diffusion model (UNETLoader) "
            "of the size it was trained on.")
    left_out = check_native_fit(entry.name, _factor_shapes(patches), _weight_shapes(model, patches),
                                type(model.model).__name__)
    for key in left_out:
        patches.pop(key)
    return patches, native_report(entry.name, len(patches), left_out)


def _factor_shapes(patches: dict) -> dict:
    """{model weight key: (up shape, down shape)} of core's LoRA adapters (weights = up, down, alpha, ...); a patch
    on a slice of a weight (a tuple key) is left to core."""
    shapes = {}
    for key, patch in patches.items():
        weights = getattr(patch, "weights", None)
        if isinstance(key, str) and weights is not None and len(weights) >= 2:
            shapes[key] = (tuple(weights[0].shape), tuple(weights[1].shape))
    return shapes


def _weight_shapes(model, patches: dict) -> dict:
    state = model.model.state_dict()
    return {key: tuple(state[key].shape) for key in patches if isinstance(key, str) and key in state}


def _hooks_on_every_cond(executor, *args, **kwargs):
    """OUTER_SAMPLE wrapper: this run's conds (copies core made for it) carry the model's LoRA hooks."""
    guider = executor.class_obj
    ours = guider.model_patcher.get_attachment(HOOKS_KEY)
    if ours is not None:
        combined = {}  # one group per distinct set of cond hooks, so conds still batch together
        for conds in guider.conds.values():
            for cond in conds:
                existing = cond.get("hooks")
                if id(existing) not in combined:
                    combined[id(existing)] = comfy.hooks.HookGroup.combine_all_hooks([existing, ours])
                cond["hooks"] = combined[id(existing)]
    return executor(*args, **kwargs)


def _add_ranged(model, entry: NativeLora, patches: dict) -> set:
    hook = comfy.hooks.WeightHook(strength_model=entry.strength, strength_clip=0.0)
    hook.weights, hook.need_weight_init = patches, False
    group = comfy.hooks.HookGroup()
    group.add(hook)
    keyframes = comfy.hooks.HookKeyframeGroup()
    for frame in range_keyframes(entry.start_percent, entry.end_percent):
        # guarantee_steps=0: a range too narrow to contain a step's sigma does not act at all
        keyframes.add(comfy.hooks.HookKeyframe(frame.multiplier, frame.start_percent, guarantee_steps=0))
    group.set_keyframes_on_hooks(keyframes)
    placed = model.add_hook_patches(hook=hook, patches=patches, strength_patch=entry.strength)
    previous = model.get_attachment(HOOKS_KEY)
    model.set_attachments(HOOKS_KEY, group if previous is None else previous.clone_and_combine(group))
    if not model.get_wrappers(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, HOOKS_KEY):
        model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, HOOKS_KEY, _hooks_on_every_cond)
    return set(placed)


def apply_native_lora(model, entry: NativeLora) -> list[str]:
    """Patch ``model`` (a clone) in place: a full range is a plain weight patch, as LoraLoaderModelOnly's; a step
    range is a weight hook with keyframes. Returns what was applied and left out, in words."""
    patches, report = _native_patches(model, entry)
    if range_keyframes(entry.start_percent, entry.end_percent):
        placed = _add_ranged(model, entry, patches)
    else:
        placed = set(model.add_patches(patches, entry.strength))
    if len(placed) != len(patches):
        raise LoraMismatchError(f"LoRA '{entry.name}': {len(patches) - len(placed)} layers found no weight to patch "
                                "in this MODEL; connect the Wan model the LoRA was trained for.")
    return report


class ApplyMotionLoRANative(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="MDApplyMotionLoRANative",
            display_name="Apply Motion LoRA (native MODEL)",
            category=f"{CATEGORY}/native",
            description="Put a motion or appearance LoRA (or a whole LoRA stack) on a native Wan MODEL from "
            "UNETLoader, acting only within a step range, for core's KSampler / SamplerCustomAdvanced. Chain several "
            "to combine LoRAs. Ranges are shares of the denoising schedule, as in core's hook keyframes.",
            inputs=[
                io.Model.Input("model", tooltip="A native Wan diffusion model (UNETLoader), before or after "
                               "ModelSamplingSD3."),
                LoraType.Input("lora", optional=True, tooltip="A LoRA from Train Motion LoRA or the `lora` output "
                               "of Load Motion/Appearance LoRA."),
                LoraStackType.Input("lora_stack", optional=True, tooltip="A whole LoRA stack: each entry keeps its "
                                    "own strength and range, scaled by `strength` and narrowed by this range."),
                io.Float.Input("strength", default=1.0, min=-5.0, max=5.0, step=0.05,
                               tooltip="How strongly the LoRA acts; 0 turns it off, negative pushes away from it."),
                io.Float.Input("start_percent", default=0.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Share of the schedule done before the LoRA starts acting (motion forms "
                               "early: keep motion LoRAs from 0)."),
                io.Float.Input("end_percent", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Share of the schedule done when the LoRA stops acting (1 = to the end). "
                               "About 0.7 lets the base model redraw the look: less of the reference's colour, "
                               "smooth paths kept, jittery ones weakened."),
            ],
            outputs=[io.Model.Output("model_with_lora", display_name="model",
                                     tooltip="The model with the LoRA(s) on it.")],
        )

    @classmethod
    def execute(cls, model, strength, start_percent, end_percent, lora=None, lora_stack=None) -> io.NodeOutput:
        if lora is None and lora_stack is None:
            raise InvalidInputError("Connect a LoRA to `lora` or a LoRA stack to `lora_stack`.")
        entries, kernels = [], []
        for source in (lora_stack, lora):
            if source is not None:
                entries += native_loras(source, strength, start_percent, end_percent)
                kernels += native_kernels(source, strength, start_percent, end_percent)  # DeT: native_kernel.py
        patched = model.clone()
        report = [line for entry in entries for line in apply_native_lora(patched, entry)]
        apply_native_kernels(patched, kernels)
        return io.NodeOutput(patched, ui=ui.PreviewText("\n".join(report or ["no LoRA acts in this range"])))


class ReferenceNoise:
    """Core's NOISE protocol (``seed``, ``generate_noise(latent)``): the noise-prior start for this latent. The
    inversion runs on first use for a latent size and is kept, so a re-queue with another seed costs nothing."""

    def __init__(self, backbone, clip, plan: ReferenceNoisePlan):
        self.backbone, self.clip, self.plan, self.seed = backbone, clip, plan, int(plan.seed)
        self._inverted = {}

    def generate_noise(self, input_latent):
        latent = input_latent["samples"]
        fresh = comfy.sample.prepare_noise(latent, self.seed, input_latent.get("batch_index"))
        size = tuple(latent.shape[1:])
        if size not in self._inverted:
            callbacks = SamplingCallbacks(should_cancel=interrupted, preview="none")
            try:
                self._inverted[size] = reference_inversion(self.backbone, self.clip, (1, *size), self.plan, callbacks)
            except CancelledError:
                comfy.model_management.throw_exception_if_processing_interrupted()
                raise
        return reference_start(self._inverted[size], fresh, self.plan).to(latent.dtype)


class ReferenceNoiseNative(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="MDReferenceNoiseNative",
            display_name="Reference Noise (native)",
            category=f"{CATEGORY}/native",
            description="The reference clip's noise prior as a NOISE for SamplerCustomAdvanced on a native Wan "
            "model: the clip inverted by the video model, blended with seeded noise. Use an empty latent, the euler "
            "sampler and the normal scheduler with the same steps and shift for Sample Video's result.",
            inputs=[
                ModelType.Input("video_model", tooltip="The same Wan model, from Load Video Model: it inverts the "
                                "clip."),
                ClipsType.Input("reference_clips", tooltip="The reference (the first clip is used)."),
                io.Float.Input("noise_prior_p", default=0.5, min=0.0, max=1.0, step=0.05,
                               tooltip="Share of the inverted reference in the starting noise: 0.1-0.5 for "
                               "one-clip LoRAs (MotionDirector), 1 for VMC."),
                io.Combo.Input("noise_prior_mode", options=list(NOISE_PRIOR_MODES), default="full",
                               tooltip="full: the whole inverted reference. motion: only its frame-to-frame part, "
                               "so the reference's look does not carry over."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Seed of the fresh noise (the same noise core's RandomNoise draws)."),
                io.Int.Input("steps", default=20, min=1, max=500,
                             tooltip="Inversion steps: the sampler's steps (one model call each)."),
                io.Float.Input("shift", default=0.0, min=0.0, max=100.0, step=0.1,
                               tooltip="The shift of ModelSamplingSD3 in the graph; 0 = the video model's own."),
            ],
            outputs=[io.Noise.Output("noise", display_name="noise",
                                     tooltip="For SamplerCustomAdvanced's noise input.")],
        )

    @classmethod
    def execute(cls, video_model, reference_clips, noise_prior_p, noise_prior_mode, seed, steps,
                shift) -> io.NodeOutput:
        plan = ReferenceNoisePlan(p=noise_prior_p, mode=noise_prior_mode, seed=seed, steps=steps, shift=shift)
        if not reference_clips.clips:
            raise InvalidInputError("reference_clips holds no clip; connect Load Reference Video.")
        return io.NodeOutput(ReferenceNoise(video_model, reference_clips.clips[0], plan))


NODES = [ApplyMotionLoRANative, ReferenceNoiseNative]
