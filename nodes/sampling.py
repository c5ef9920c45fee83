"""Sample Video: text-to-video with a stack of motion and appearance LoRAs, as IMAGE + fps for core video nodes."""

from __future__ import annotations

import contextlib
import os
import re
import warnings

from comfy_api.latest import io, ui

import comfy.model_management

from ..motion_core.errors import CancelledError
from ..motion_core.sampling import NOISE_PRIOR_MODES, SCHEDULER_NAMES, SampleRequest, SamplingCallbacks, sample_video
from .progress import NodeProgress, interrupted, log
from .types import CATEGORY, ClipsType, LoraStackType, ModelType


PACK_DIR = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
# The pack's own code only: a virtual environment may live inside the pack's folder too.
_PACK_CODE = tuple(os.path.join(PACK_DIR, part) + os.sep for part in ("motion_core", "nodes"))
_PACK_MODULES = re.escape(__package__.rpartition(".")[0]) + r"\."


@contextlib.contextmanager
def engine_warnings():
    """Collect the pack's own warnings (a prompt cut at the text encoder's length, ...) while the engine runs, so the
    node can show them: a UserWarning otherwise lands only in the console, where a ComfyUI user does not look.

    Yields a list that holds the messages, each once and in order, when the block ends; they are also logged.
    Warnings of other libraries are shown as they would have been without this block."""
    notes: list[str] = []
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            # Every warning of the pack is kept (not once per code line): two prompts cut alike are two messages.
            warnings.filterwarnings("always", category=UserWarning, module=_PACK_MODULES)
            yield notes
    finally:  # also when the run fails: what went wrong before still reaches the log
        for record in caught:
            if _is_pack_file(record.filename) and issubclass(record.category, UserWarning):
                text = str(record.message)
                if text not in notes:
                    notes.append(text)
                    log.warning("%s", text)
            else:
                warnings.showwarning(record.message, record.category, record.filename, record.lineno)


def _is_pack_file(filename: str) -> bool:
    return os.path.realpath(filename).startswith(_PACK_CODE)


def run_sampling(backbone, request: SampleRequest):
    """Shared by the node and the trainer's previews: ComfyUI progress, preview and interrupt around the sampler."""
    progress = NodeProgress(request.steps)
    callbacks = SamplingCallbacks(
        progress=progress.update, should_cancel=interrupted, preview="rgb", preview_every=max(1, request.steps // 10)
    )
    try:
        return sample_video(backbone, request, callbacks)
    except CancelledError:
        comfy.model_management.throw_exception_if_processing_interrupted()
        raise


class SampleVideo(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="MDSampleVideo",
            display_name="Sample Video",
            category=f"{CATEGORY}/sampling",
            description="Generate a video from a prompt with the video model, applying a stack of motion and "
            "appearance LoRAs (each only in its step range). Optionally start from a reference clip's inverted "
            "noise (the noise prior).",
            inputs=[
                ModelType.Input("video_model", tooltip="From Load Video Model."),
                io.String.Input(
                    "prompt",
                    multiline=True,
                    default="",
                    tooltip="What to show; the motion comes from the motion LoRAs (include the "
                    "trigger word if the LoRA was trained with one).",
                ),
                io.String.Input(
                    "negative_prompt", multiline=True, default="", tooltip="What to avoid (used when cfg > 1)."
                ),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=2**63 - 1,
                    control_after_generate=True,
                    tooltip="Noise seed; the same seed and settings give the same video.",
                ),
                io.Int.Input("steps", default=25, min=1, max=500, tooltip="Denoising steps."),
                io.Float.Input(
                    "cfg",
                    default=7.5,
                    min=1.0,
                    max=30.0,
                    step=0.1,
                    tooltip="Classifier-free guidance; 1 disables it (half the cost).",
                ),
                io.Int.Input("frames", default=16, min=1, max=256,
                             tooltip="Number of frames to generate (Wan: 1 + 4k, e.g. 17, 33, 81)."),
                io.Int.Input("width", default=256, min=8, max=4096, step=8, tooltip="Width in pixels."),
                io.Int.Input("height", default=256, min=8, max=4096, step=8, tooltip="Height in pixels."),
                io.Combo.Input(
                    "scheduler",
                    options=list(SCHEDULER_NAMES),
                    default="auto",
                    tooltip="Sampling solver (diffusers schedulers). auto: DDIM for UNet models, UniPC with flow "
                    "sigmas for Wan (as Wan's own pipelines). Wan takes auto, unipc, euler and dpmpp_2m.",
                ),
                io.Float.Input(
                    "frame_rate",
                    default=8.0,
                    min=0.1,
                    max=120.0,
                    step=0.5,
                    tooltip="Frame rate passed on to video-saving nodes.",
                ),
                LoraStackType.Input(
                    "lora_stack", optional=True, tooltip="Motion and appearance LoRAs from Load Motion/Appearance LoRA."
                ),
                ClipsType.Input(
                    "noise_prior_clips",
                    optional=True,
                    tooltip="A reference clip whose DDIM-inverted noise seeds the sample (first clip is used).",
                ),
                io.Float.Input(
                    "noise_prior_p",
                    default=0.0,
                    min=0.0,
                    max=1.0,
                    step=0.05,
                    optional=True,
                    tooltip="Share of the inverted reference in the starting noise: 0 off, 0.1-0.5 "
                    "for one-clip LoRAs (MotionDirector), 1 for VMC.",
                ),
                io.Combo.Input(
                    "noise_prior_mode",
                    options=list(NOISE_PRIOR_MODES),
                    default="full",
                    optional=True,
                    tooltip="full: blend the whole inverted reference (the papers' prior). motion: only its "
                    "frame-to-frame part, so the reference's look does not carry over (less leakage).",
                ),
                io.Float.Input(
                    "cfg_low_noise",
                    default=0.0,
                    min=0.0,
                    max=30.0,
                    step=0.1,
                    optional=True,
                    tooltip="Wan 2.2 A14B with both experts loaded: the guidance of the low-noise expert's steps "
                    "(Wan's own A14B settings: 4.0 high, 3.0 low). 0: the same as cfg.",
                ),
                io.Image.Input(
                    "start_image",
                    optional=True,
                    tooltip="Image-to-video: the picture the clip starts from (Load Image). Wan I2V models need "
                    "it; Wan 2.2 TI2V 5B animates it when given; text-to-video models take none. It is scaled to "
                    "cover width x height and centre-cropped.",
                ),
            ],
            outputs=[
                io.Image.Output(
                    "images", display_name="images", tooltip="The frames, float [frames, height, width, 3] in 0..1."
                ),
                io.Float.Output("fps", display_name="fps", tooltip="Frame rate for video-saving nodes."),
            ],
        )

    @classmethod
    def execute(
        cls,
        video_model,
        prompt,
        negative_prompt,
        seed,
        steps,
        cfg,
        frames,
        width,
        height,
        scheduler,
        frame_rate,
        lora_stack=None,
        noise_prior_clips=None,
        noise_prior_p=0.0,
        noise_prior_mode="full",
        cfg_low_noise=0.0,
        start_image=None,
    ) -> io.NodeOutput:
        request = SampleRequest(
            prompt=prompt,
            negative_prompt=negative_prompt,
            seed=seed,
            steps=steps,
            cfg=cfg,
            frames=frames,
            width=width,
            height=height,
            scheduler=scheduler,
            fps=frame_rate,
            noise_prior_clip=noise_prior_clips.clips[0] if noise_prior_clips else None,
            noise_prior_p=noise_prior_p,
            noise_prior_mode=noise_prior_mode,
            cfg_low_noise=cfg_low_noise or None,
            start_image=start_image,
            **({"lora_stack": lora_stack} if lora_stack is not None else {}),
        )
        with engine_warnings() as notes:
            result = run_sampling(video_model, request)
        preview = animated_preview(result.frames, result.fps, cls).as_dict()
        notes = [*notes, *result.not_applied]  # e.g. the prompt was cut, or a LoRA file's text-encoder part
        if notes:  # shown on the node next to the video it changed
            preview["text"] = ("\n".join(notes),)
        return io.NodeOutput(result.frames, float(result.fps), ui=preview)


def animated_preview(frames, fps: float, cls) -> ui.SavedImages:
    """An animated WebP in ComfyUI's temp folder, so the node itself plays the result (the frontend animates it)."""
    saved = ui.ImageSaveHelper.save_animated_webp(
        frames, "md_preview", io.FolderType.temp, cls, fps=fps, lossless=False, quality=85, method=4
    )
    return ui.SavedImages([saved], is_animated=frames.shape[0] > 1)


NODES = [SampleVideo]
