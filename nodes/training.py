"""Train Motion LoRA: the trainer inside a ComfyUI graph, with live progress, previews, cancel and resume."""

from __future__ import annotations

import os
import re

import folder_paths
import torch
from comfy_api.latest import io, ui

import comfy.model_management

from ..motion_core.errors import CancelledError
from ..motion_core.recipes import recipe_names
from ..motion_core.sampling import SampleRequest, SamplingCallbacks, sample_video
from ..motion_core.training import TrainingCallbacks, TrainingConfig, plot_loss, train_motion_lora
from ..motion_core.training.config import START_IMAGE_TRAINING
from ..motion_core.typed_paths import any_path_allowed, confine_typed_path
from . import paths
from .progress import NodeProgress, animated_webp_data_url, interrupted, log, send_event
from .sampling import engine_warnings
from .types import CATEGORY, ClipsType, LoraType, ModelType

RECIPE_HELP = (
    "motion_director: dual-path spatial/temporal LoRAs (Zhao et al. 2023); vmc: temporal attention with a motion-vector"
    " loss (Jeong et al. 2023); customize_a_video: appearance absorber then temporal LoRA (Ren et al. 2024); "
    "motion_crafter: parallel LoRAs, frozen-base appearance normalisation (Zhang et al. 2023, our reading); newmove: "
    "trigger word, high-noise steps, regularisation clips (Materzynska et al. 2023, our reading); det: temporal kernel "
    "in every Wan block + self-attention LoRA, dense tracking loss (Shi et al. 2025; the kernel needs Sample Video or "
    "Apply Motion LoRA; UNets: temporal LoRA + the loss); naive: one LoRA on all attention."
)


def checkpoint_root() -> str:
    return os.path.join(folder_paths.get_output_directory(), "motion_lora_checkpoints")


def _resume_path(resume_from: str) -> str | None:
    """The checkpoint to resume, kept inside ComfyUI's folders unless the server's owner opened reach: a typed path
    must not tell which files exist elsewhere on the machine."""
    if not resume_from or not resume_from.strip():
        return None
    return confine_typed_path(resume_from, [], paths.comfy_roots(), allow_any=any_path_allowed(),
                              what="Checkpoint", where=paths.COMFY_ROOTS_LABEL,
                              fix="Pick a checkpoint-step*.pt file from output/motion_lora_checkpoints/<name>/.")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "motion_lora"


class _Reporter:
    """Progress bar + `md.training.*` events for the web extension; validation previews sampled in-process."""

    def __init__(self, node_id: str, total: int, preview_prompt: str, preview_size: tuple[int, int, int]):
        self.node_id, self.total, self.preview_prompt = node_id, total, preview_prompt
        self.preview_frames, self.preview_width, self.preview_height = preview_size
        self.progress = NodeProgress(total)
        self.last_preview = None
        self.preview_image = None  # image-to-video: the previews' start image

    def on_progress(self, info) -> None:
        self.progress.update(info.step, info.total_steps, self.last_preview)
        self.last_preview = None
        send_event(
            "md.training.progress",
            {
                "node": self.node_id,
                "step": info.step,
                "total": info.total_steps,
                "stage": info.stage,
                "losses": info.losses,
                "lr": info.lr,
                "eta_s": info.eta_s,
                "it_per_s": info.it_per_s,
            },
        )

    def on_validation(self, step: int, backbone) -> None:
        request = SampleRequest(
            prompt=self.preview_prompt,
            seed=0,
            steps=10,
            cfg=1.0,
            frames=self.preview_frames,
            width=self.preview_width,
            height=self.preview_height,
            scheduler="auto",
            start_image=self.preview_image,
        )
        result = sample_video(backbone, request, SamplingCallbacks(should_cancel=interrupted, preview="none"))
        self.last_preview = result.frames
        send_event(
            "md.training.preview", {"node": self.node_id, "step": step, "image": animated_webp_data_url(result.frames)}
        )

    def on_checkpoint(self, path) -> None:
        log.info("motion LoRA checkpoint written: %s", path)


class TrainMotionLoRA(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="MDTrainMotionLoRA",
            display_name="Train Motion LoRA",
            category=f"{CATEGORY}/training",
            description="Learn the motion of the reference clips as a motion LoRA with one of five published "
            "methods. Shows step, loss and preview clips while it runs; cancel writes a checkpoint you can resume.",
            inputs=[
                ModelType.Input("video_model", tooltip="From Load Video Model."),
                ClipsType.Input("clips", tooltip="Reference clips from Load Reference Video."),
                io.Combo.Input("recipe", options=recipe_names(), default="motion_director", tooltip=RECIPE_HELP),
                io.Int.Input(
                    "steps",
                    default=0,
                    min=0,
                    max=100_000,
                    tooltip="Optimiser steps; 0 = the recipe's default (e.g. MotionDirector 150 for one "
                    "clip, 400 for several).",
                ),
                io.Float.Input(
                    "learning_rate",
                    default=0.0,
                    min=0.0,
                    max=1.0,
                    step=1e-5,
                    tooltip="0 = the recipe's default (MotionDirector 5e-4, VMC 1e-4).",
                ),
                io.Int.Input("rank", default=0, min=0, max=256, tooltip="LoRA rank; 0 = the recipe's default (32)."),
                io.Int.Input(
                    "width",
                    default=256,
                    min=8,
                    max=4096,
                    step=8,
                    tooltip="Training width; clips are resized and center-cropped to it.",
                ),
                io.Int.Input("height", default=256, min=8, max=4096, step=8, tooltip="Training height."),
                io.Int.Input("frames", default=16, min=2, max=256,
                             tooltip="Frames per clip used in training (Wan: 1 + 4k, e.g. 17 or 33)."),
                io.Int.Input(
                    "seed",
                    default=0,
                    min=0,
                    max=2**31 - 1,
                    # The frontend adds this control to every INT named seed anyway; declaring it keeps saved
                    # workflows' widget values in the order the frontend reads them.
                    control_after_generate=True,
                    tooltip="Seed of the run (deterministic on CPU).",
                ),
                io.Int.Input(
                    "checkpoint_every",
                    default=0,
                    min=0,
                    max=100_000,
                    tooltip="Write a resumable checkpoint every N steps (0 = only on cancel).",
                ),
                io.Int.Input(
                    "validate_every",
                    default=0,
                    min=0,
                    max=100_000,
                    tooltip="Sample a short preview with the current LoRA every N steps (0 = never).",
                ),
                io.String.Input(
                    "name", default="my_motion", tooltip="Name stored in the LoRA and used for its checkpoint folder."
                ),
                io.String.Input(
                    "training_caption",
                    default="",
                    optional=True,
                    tooltip="Use this prompt for every clip instead of its own caption (VMC's "
                    "appearance-free caption, e.g. 'an object is moving'; NewMove's trigger phrase).",
                ),
                io.String.Input(
                    "preview_prompt",
                    default="",
                    optional=True,
                    tooltip="Prompt of the validation previews (default: the first clip's caption).",
                ),
                ClipsType.Input(
                    "regularisation_clips",
                    optional=True,
                    tooltip="NewMove only: clips of related motions with their own captions.",
                ),
                io.String.Input(
                    "resume_from",
                    default="",
                    optional=True,
                    tooltip="A checkpoint .pt file (output/motion_lora_checkpoints/...) to continue. Typed paths "
                    "reach only ComfyUI's folders unless the server's owner set MOTION_CORE_ALLOW_ANY_PATH=1.",
                ),
                io.Combo.Input(
                    "base_storage",
                    options=["native", "fp8"],
                    default="native",
                    optional=True,
                    tooltip="fp8: store the frozen model's linear weights in fp8 (half of bf16), upcast layer by "
                    "layer; the LoRA stays full precision. With block_offload, what lets the 14B Wan models train "
                    "on a 24 GB card. Undone after training.",
                ),
                io.Boolean.Input(
                    "block_offload",
                    default=False,
                    optional=True,
                    tooltip="Wan: keep the transformer blocks on the CPU and move each to the GPU as it runs "
                    "(slower, far less GPU memory). Undone after training.",
                ),
                io.Float.Input(
                    "high_noise_bias",
                    default=0.0,
                    min=0.0,
                    max=8.0,
                    step=0.5,
                    optional=True,
                    tooltip="How strongly training favours high noise levels, where a clip's motion is decided: "
                    "1 = uniform, 3 = strongly (what the built-in model needs for a one-shot MotionDirector LoRA to "
                    "carry the reference's path); 0 = the recipe's own (uniform; NewMove 2).",
                ),
                io.Combo.Input(
                    "memory",
                    options=["auto", "manual"],
                    default="auto",
                    optional=True,
                    tooltip="auto: before training, predict the peak GPU (and host) memory of this run and pick the "
                    "cheapest settings that fit the free memory with a 10% margin: no gradient checkpointing when it "
                    "fits (fastest), else checkpointing, then fp8 storage, then offloading as few Wan blocks as "
                    "needed; base_storage fp8 or block_offload set here are kept. If nothing fits, it stops before "
                    "training and says what would (fewer frames, a smaller size, a smaller model). manual: "
                    "base_storage and block_offload apply as set, with gradient checkpointing on. The plan is shown "
                    "under the node either way.",
                ),
                io.Combo.Input(
                    "start_image",
                    options=list(START_IMAGE_TRAINING),
                    default="auto",
                    optional=True,
                    tooltip="Image-to-video: auto trains Wan I2V models with each clip's first frame as the start "
                    "image; first_frame does so for Wan 2.2 TI2V 5B too (its I2V mode); none trains text-to-video.",
                ),
                io.Int.Input(
                    "recolour",
                    default=0,
                    min=0,
                    max=8,
                    optional=True,
                    tooltip="Image-to-video: also train on this many hue-turned copies of each clip, so the motion "
                    "is seen from several start images and binds less to the reference's own look (2 is a good "
                    "start; docs/benchmarks.md measures it). 0: the clips as given.",
                ),
                io.Int.Input(
                    "shift_copies",
                    default=0,
                    min=0,
                    max=8,
                    optional=True,
                    tooltip="Image-to-video: also train on this many copies of each clip moved as a whole (every "
                    "frame by the same offset, 1/8 of the frame), so the motion is seen starting from other places "
                    "(docs/image_to_video.md measures it). 0: none.",
                ),
                io.Float.Input(
                    "start_image_dropout",
                    default=0.0,
                    min=0.0,
                    max=0.95,
                    step=0.05,
                    optional=True,
                    tooltip="Image-to-video: share of training steps on which the model is shown no start image, so "
                    "the LoRA must carry the motion without leaning on the reference's picture (built-in model: 0.3 "
                    "helped every motion with DeT, hurt zigzag with MotionDirector; docs/image_to_video.md). 0: never.",
                ),
                io.Image.Input(
                    "preview_image",
                    optional=True,
                    tooltip="Image-to-video: the start image of the validation previews (default: the first "
                    "clip's first frame).",
                ),
            ],
            outputs=[
                LoraType.Output(
                    "motion_lora",
                    display_name="motion_lora",
                    tooltip="The motion LoRA: feed Load Motion LoRA or Save Motion LoRA.",
                ),
                LoraType.Output(
                    "appearance_lora",
                    display_name="appearance_lora",
                    tooltip="The appearance LoRA the recipe learned on the side "
                    "(MotionDirector, Customize-A-Video, MotionCrafter), or nothing.",
                ),
                io.Image.Output("loss_plot", display_name="loss_plot", tooltip="Loss terms over the steps."),
            ],
            hidden=[io.Hidden.unique_id],
            not_idempotent=True,
        )

    @classmethod
    def execute(
        cls,
        video_model,
        clips,
        recipe,
        steps,
        learning_rate,
        rank,
        width,
        height,
        frames,
        seed,
        checkpoint_every,
        validate_every,
        name,
        training_caption="",
        preview_prompt="",
        regularisation_clips=None,
        resume_from="",
        base_storage="native",
        block_offload=False,
        high_noise_bias=0.0,
        memory="auto",
        start_image="auto",
        recolour=0,
        shift_copies=0,
        start_image_dropout=0.0,
        preview_image=None,
    ) -> io.NodeOutput:
        resume = _resume_path(resume_from)
        auto = memory != "manual"
        config = TrainingConfig(
            steps=steps or None,
            lr=learning_rate or None,
            rank=rank or None,
            width=width,
            height=height,
            frames=frames,
            seed=seed,
            checkpoint_every=checkpoint_every,
            validate_every=validate_every,
            checkpoint_dir=os.path.join(checkpoint_root(), _slug(name)),
            name=name,
            # In auto mode the widgets' defaults (native, off) leave the choice to the plan; fp8 / offload are kept.
            base_storage=None if auto and base_storage == "native" else base_storage,
            block_offload=None if auto and not block_offload else bool(block_offload),
            timestep_skew=high_noise_bias or None,
            memory="auto" if auto else "manual",
            start_image=start_image,
            recolour=int(recolour),
            shift_copies=int(shift_copies),
            start_image_dropout=float(start_image_dropout),
        )
        total = steps or 1
        preview_frames = video_model.frames_up_to(min(frames, 8))  # a short preview, in a length the VAE takes
        reporter = _Reporter(
            str(cls.hidden.unique_id), total, preview_prompt or clips.clips[0].caption, (preview_frames, width, height)
        )
        if video_model.start_image == "required" or start_image == "first_frame" and video_model.start_image != "none":
            reporter.preview_image = preview_image if preview_image is not None else clips.clips[0].frames[:1].float() / 255.0
        callbacks = TrainingCallbacks(
            on_progress=reporter.on_progress,
            should_cancel=interrupted,
            on_validation=reporter.on_validation,
            on_checkpoint=reporter.on_checkpoint,
        )
        comfy.model_management.unload_all_models()
        try:
            with engine_warnings() as notes, torch.inference_mode(False), torch.enable_grad():
                result = train_motion_lora(
                    video_model,
                    clips,
                    recipe,
                    config,
                    callbacks,
                    regularisation_clips=regularisation_clips,
                    training_caption=training_caption or None,
                    resume_from=resume,
                )
        except CancelledError as err:
            log.warning("%s", err)
            comfy.model_management.throw_exception_if_processing_interrupted()
            raise
        finally:
            comfy.model_management.soft_empty_cache()
        appearance = result.appearance_loras[0] if result.appearance_loras else None
        plot = plot_loss(result.history).float().div(255.0).unsqueeze(0)
        if result.warnings:  # the LoRA is kept, but the user must know e.g. that the final checkpoint is missing
            for warning in result.warnings:
                log.warning("%s", warning)
        # A caption or preview prompt cut at the text encoder's length trained or previewed a different text.
        shown = [*result.warnings, *notes]
        if result.memory_plan is not None:
            log.info("%s", result.memory_plan.summary())
            shown.append(result.memory_plan.summary())
        if shown:
            return io.NodeOutput(result.motion_lora, appearance, plot, ui=ui.PreviewText("\n".join(shown)))
        return io.NodeOutput(result.motion_lora, appearance, plot)


NODES = [TrainMotionLoRA]
