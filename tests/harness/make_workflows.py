"""Regenerate the shared workflows in workflows/ from a running ComfyUI's /object_info.

    python -m tests.harness.make_workflows

Each workflow carries a Note that explains it. Model and clip names are the ones the Notes tell users to provide.
"""

from __future__ import annotations

import json

from .comfy_server import ComfyServer
from .provision import REPO_ROOT
from .workflow_builder import Graph

OUT = REPO_ROOT / "workflows"


def _save_video(g: Graph, column: int, images_from: int, prefix: str, fps_from: int | None = None) -> None:
    create = g.add("CreateVideo", column, {"fps": 8.0}, height=100)
    g.link(images_from, "images", create, "images")
    if fps_from is not None:
        g.link(fps_from, "fps", create, "fps")
    save = g.add("SaveVideo", column, {"filename_prefix": prefix}, height=360)
    g.link(create, "VIDEO", save, "video")


def _train_and_sample(g: Graph, column: int, model: int, clips: int, train: dict, sample: dict,
                      save_prefix: str | None, video_prefix: str, noise_prior: bool = False) -> None:
    """Train Motion LoRA -> (Save Motion LoRA) -> Load Motion LoRA -> Sample Video -> Create/Save Video."""
    trainer = g.add("MDTrainMotionLoRA", column, train, height=620)
    g.link(model, "video_model", trainer, "video_model")
    g.link(clips, "clips", trainer, "clips")
    if save_prefix:
        save = g.add("MDSaveMotionLoRA", column + 1, {"filename_prefix": save_prefix}, height=150)
        g.link(trainer, "motion_lora", save, "lora")
    stack = g.add("MDLoadMotionLoRA", column + 1, {}, height=200)
    g.link(trainer, "motion_lora", stack, "trained_lora")
    sampler = g.add("MDSampleVideo", column + 2, sample, height=520)
    g.link(model, "video_model", sampler, "video_model")
    g.link(stack, "lora_stack", sampler, "lora_stack")
    if noise_prior:
        g.link(clips, "clips", sampler, "noise_prior_clips")
    _save_video(g, column + 3, sampler, video_prefix, fps_from=sampler)


def one_clip(info) -> dict:
    g = Graph(info)
    g.add("Note", 0, {"text": (
        "One reference clip -> MotionDirector -> a new subject doing the same motion.\n\n"
        "1. Put zeroscope_v2_576w (diffusers folder) in models/diffusers.\n"
        "2. Upload your clip in Load Reference Video and describe it in the caption.\n"
        "3. Queue. Training shows its loss and preview clips on the node (about 150 steps for one clip).\n"
        "4. Sample Video then renders the prompt's subject doing the learned motion; the motion LoRA is also saved "
        "to models/motion_loras/motion_director/.\n"
        "The noise prior (p = 0.2) starts sampling from the reference's inverted noise for a closer match.")},
        height=220)
    model = g.add("MDLoadVideoModel", 0, {"model": "diffusers: zeroscope_v2_576w"}, height=170)
    clip = g.add("MDLoadReferenceVideo", 0, {"video": "reference_motion.mp4", "caption": "a man is skateboarding",
                                              "frame_cap": 16, "width": 576, "height": 320}, height=460)
    _train_and_sample(
        g, 1, model, clip,
        {"recipe": "motion_director", "width": 576, "height": 320, "frames": 16, "validate_every": 50,
         "checkpoint_every": 50, "name": "skateboarding", "preview_prompt": "a man is skateboarding"},
        {"prompt": "a bear is skateboarding in the snow", "steps": 30, "cfg": 9.0, "frames": 16, "width": 576,
         "height": 320, "scheduler": "dpmpp_2m", "noise_prior_p": 0.2},
        "motion_director/skateboarding", "motion_director/bear", noise_prior=True)
    return g.to_json()


def several_clips(info) -> dict:
    g = Graph(info)
    g.add("Note", 0, {"text": (
        "Several clips -> one motion concept (MotionDirector, one spatial LoRA per clip, a shared temporal LoRA).\n\n"
        "Chain Load Reference Video nodes through previous_clips; each clip keeps its own caption. With several "
        "clips the recipe's defaults switch to 400 steps and weight decay 1e-4. The temporal LoRA generalises the "
        "motion across the clips' different looks.")}, height=200)
    model = g.add("MDLoadVideoModel", 0, {"model": "diffusers: zeroscope_v2_576w"}, height=170)
    previous = None
    for i, caption in enumerate(["a person doing a golf swing", "a man swinging a golf club on grass",
                                 "a woman doing a golf swing"]):
        clip = g.add("MDLoadReferenceVideo", 1, {"video": f"golf_swing_{i + 1}.mp4", "caption": caption,
                                                  "frame_cap": 16, "width": 384, "height": 384}, height=460)
        if previous:
            g.link(previous, "clips", clip, "previous_clips")
        previous = clip
    _train_and_sample(
        g, 2, model, previous,
        {"recipe": "motion_director", "width": 384, "height": 384, "frames": 16, "validate_every": 100,
         "checkpoint_every": 100, "name": "golf_swing"},
        {"prompt": "a monkey doing a golf swing on the beach", "steps": 30, "cfg": 9.0, "frames": 16, "width": 384,
         "height": 384},
        "concepts/golf_swing", "concepts/golf_monkey")
    return g.to_json()


def stacked(info) -> dict:
    g = Graph(info)
    g.add("Note", 0, {"text": (
        "Two motion LoRAs + one appearance LoRA, each in its own step range.\n\n"
        "Motion forms in the early, noisy steps, detail in the late ones: the motion LoRAs act from 0% (the "
        "second only to 50%, at 0.7 strength, blending the two motions) and the appearance LoRA from 30% to the "
        "end. The stack is merged into the weights once per step range, so sampling costs the same as the base "
        "model. Put the files in models/motion_loras and models/loras.")}, height=200)
    model = g.add("MDLoadVideoModel", 0, {"model": "diffusers: zeroscope_v2_576w"}, height=170)
    first = g.add("MDLoadMotionLoRA", 1, {"lora_name": "dance_spin.safetensors", "strength": 1.0,
                                          "end_percent": 0.6}, height=200)
    second = g.add("MDLoadMotionLoRA", 1, {"lora_name": "camera_zoom_in.safetensors", "strength": 0.7,
                                           "end_percent": 0.5}, height=200)
    g.link(first, "lora_stack", second, "previous_stack")
    look = g.add("MDLoadAppearanceLoRA", 1, {"lora_name": "watercolour_style.safetensors", "strength": 0.8,
                                             "start_percent": 0.3}, height=220)
    g.link(second, "lora_stack", look, "previous_stack")
    g.link(model, "video_model", look, "video_model")
    sample = g.add("MDSampleVideo", 2, {"prompt": "a robot dancing in a city street, watercolour", "steps": 30,
                                        "cfg": 9.0, "frames": 16, "width": 576, "height": 320,
                                        "scheduler": "dpmpp_2m"}, height=520)
    g.link(model, "video_model", sample, "video_model")
    g.link(look, "lora_stack", sample, "lora_stack")
    _save_video(g, 3, sample, "stacked/robot_dance", fps_from=sample)
    return g.to_json()


def vmc_noise_prior(info) -> dict:
    g = Graph(info)
    g.add("Note", 0, {"text": (
        "VMC: temporal-attention LoRA with a motion-vector loss, sampled from the reference's inverted noise.\n\n"
        "VMC trains on an appearance-free caption (training_caption, e.g. 'a car is moving') so the LoRA keeps the "
        "motion, not the look, and samples with the noise prior at p = 1 (the DDIM inversion of the reference "
        "clip as the starting noise).")}, height=200)
    model = g.add("MDLoadVideoModel", 0, {"model": "diffusers: zeroscope_v2_576w"}, height=170)
    clip = g.add("MDLoadReferenceVideo", 0, {"video": "car_turning.mp4", "caption": "a red car driving on a road",
                                              "frame_cap": 16, "width": 576, "height": 320}, height=460)
    _train_and_sample(
        g, 1, model, clip,
        {"recipe": "vmc", "width": 576, "height": 320, "frames": 16, "validate_every": 100, "name": "car_turning",
         "training_caption": "a car is moving"},
        {"prompt": "a tank driving on a snowy road", "steps": 30, "cfg": 9.0, "frames": 16, "width": 576,
         "height": 320, "scheduler": "ddim", "noise_prior_p": 1.0},
        None, "vmc/tank", noise_prior=True)
    return g.to_json()


def shapes_demo(info) -> dict:
    g = Graph(info)
    g.add("Note", 0, {"text": (
        "CPU demo on the built-in ShapesT2V model (what `make demo` runs).\n\n"
        "The reference clip (copy motion_core/toy/assets/shapes_circle_reference.gif into ComfyUI's input folder) "
        "shows a red square moving in a circle, a motion the base model never saw. MotionDirector learns it in "
        "60 steps (under a minute on a CPU) and Sample Video makes a green triangle do it. Sampling starts from the "
        "reference's noise, motion part only (noise prior 0.5, mode motion): the clip's frame-to-frame changes "
        "carry over, its red square does not. Open the Train node to watch the loss chart and preview clips.")},
        height=230)
    model = g.add("MDLoadVideoModel", 0, {"model": "built-in: ShapesT2V", "dtype": "fp32"}, height=170)
    clip = g.add("MDLoadReferenceVideo", 0, {"video": "shapes_circle_reference.gif",
                                              "caption": "a red square moves in a circle", "frame_cap": 8,
                                              "min_frames": 8, "width": 64, "height": 64}, height=460)
    _train_and_sample(
        g, 1, model, clip,
        {"recipe": "motion_director", "steps": 60, "width": 64, "height": 64, "frames": 8, "validate_every": 20,
         "name": "shapes_circle", "preview_prompt": "a green triangle moves in a circle"},
        {"prompt": "a green triangle moves in a circle", "steps": 25, "cfg": 5.0, "frames": 8, "width": 64,
         "height": 64, "scheduler": "ddim", "seed": 2, "noise_prior_p": 0.5, "noise_prior_mode": "motion"},
        "shapes_t2v/circle", "shapes_t2v/green_triangle_circle", noise_prior=True)
    return g.to_json()


WORKFLOWS = {
    "shapes_t2v_demo.json": shapes_demo,
    "motiondirector_one_clip.json": one_clip,
    "motion_concept_several_clips.json": several_clips,
    "stacked_motions_and_look.json": stacked,
    "vmc_noise_prior.json": vmc_noise_prior,
}


def main() -> None:
    with ComfyServer() as server:
        info = server.object_info()
    for name, build in WORKFLOWS.items():
        (OUT / name).write_text(json.dumps(build(info), indent=1) + "\n")
        print(f"wrote workflows/{name}")


if __name__ == "__main__":
    main()
