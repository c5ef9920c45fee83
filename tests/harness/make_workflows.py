"""Regenerate the shared workflows in workflows/ from a running ComfyUI's /object_info.

    python -m tests.harness.make_workflows [name.json ...]

Each workflow carries a Note that explains it. Model and clip names are the ones the Notes tell users to provide.
"""

from __future__ import annotations

import json
import sys

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


def _shapes_demo(info, note: str, model: str, reference: str, frames: int, train: dict, scheduler: str,
                 folder: str) -> dict:
    """A built-in model's demo: its bundled circle clip -> MotionDirector -> a green triangle doing the circle."""
    g = Graph(info)
    g.add("Note", 0, {"text": note}, height=230)
    model_node = g.add("MDLoadVideoModel", 0, {"model": model, "dtype": "fp32"}, height=170)
    clip = g.add("MDLoadReferenceVideo", 0, {"video": reference, "caption": "a red square moves in a circle",
                                              "frame_cap": frames, "min_frames": frames, "width": 64, "height": 64},
                 height=460)
    _train_and_sample(
        g, 1, model_node, clip,
        {"recipe": "motion_director", "width": 64, "height": 64, "frames": frames, "validate_every": 20,
         "preview_prompt": "a green triangle moves in a circle", "high_noise_bias": 3.0, **train},
        {"prompt": "a green triangle moves in a circle", "steps": 25, "cfg": 5.0, "frames": frames, "width": 64,
         "height": 64, "scheduler": scheduler, "seed": 2, "noise_prior_p": 0.0},
        f"{folder}/circle", f"{folder}/green_triangle_circle")
    return g.to_json()


def shapes_demo(info) -> dict:
    return _shapes_demo(info, (
        "CPU demo on the built-in ShapesT2V model (what `make demo` runs).\n\n"
        "The reference clip (copy motion_core/toy/assets/shapes_circle_reference.gif into ComfyUI's input folder) "
        "shows a red square moving in a circle, a motion the base model never saw. MotionDirector learns it in "
        "400 steps at learning rate 1e-3 with high_noise_bias 3 (training favours the high noise levels where the "
        "path is decided; a few minutes on a CPU), and Sample Video makes a green triangle do it from fresh noise "
        "(no noise prior): the path comes from the LoRA, not from the reference's noise. Open the Train node to "
        "watch the loss chart and preview clips."),
        "built-in: ShapesT2V", "shapes_circle_reference.gif", 8,
        {"steps": 400, "learning_rate": 0.001, "name": "shapes_circle"}, "ddim", "shapes_t2v")


def shapes_wan_demo(info) -> dict:
    return _shapes_demo(info, (
        "The same demo on the built-in ShapesWan model: the real Wan classes (WanTransformer3DModel, "
        "AutoencoderKLWan, UMT5), so this is the Wan training and sampling path, on a CPU, without downloading Wan.\n\n"
        "Copy motion_core/toy/assets/shapes_circle_reference_9f.gif into ComfyUI's input folder: Wan clips are "
        "1 + 4k frames long, so this model takes 9 frames. MotionDirector learns the circle in 800 steps at "
        "learning rate 2e-3 with high_noise_bias 3 (its temporal LoRA is the joint self-attention, where a DiT's "
        "frames meet; a few minutes on a CPU) and Sample Video makes a green triangle do it from fresh noise."),
        "built-in: ShapesWan", "shapes_circle_reference_9f.gif", 9,
        {"steps": 800, "learning_rate": 0.002, "name": "shapes_wan_circle"}, "auto", "shapes_wan")


# ---- native graphs: the pack's LoRAs and tools on core's Wan nodes -------------------------------------------

WAN_13B = "wan2.1_t2v_1.3B_fp16.safetensors"
WAN_VAE = "wan_2.1_vae.safetensors"
UMT5 = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"


def _native_prompts(g: Graph, column: int, positive: str, negative: str = "blurry, static, still frame") -> tuple:
    """CLIPLoader (UMT5, wan) -> positive and negative CLIPTextEncode; returns their node ids."""
    clip = g.add("CLIPLoader", column, {"clip_name": UMT5, "type": "wan"}, height=110)
    pos = g.add("CLIPTextEncode", column, {"text": positive}, title="Positive prompt", height=150)
    neg = g.add("CLIPTextEncode", column, {"text": negative}, title="Negative prompt", height=150)
    g.link(clip, "CLIP", pos, "clip")
    g.link(clip, "CLIP", neg, "clip")
    return pos, neg


def _native_decode(g: Graph, column: int, latent_from: int, prefix: str, fps: float = 16.0) -> None:
    vae = g.add("VAELoader", column, {"vae_name": WAN_VAE}, height=90)
    decode = g.add("VAEDecode", column, height=80)
    g.link(latent_from, "LATENT", decode, "samples")
    g.link(vae, "VAE", decode, "vae")
    create = g.add("CreateVideo", column, {"fps": fps}, height=100)
    g.link(decode, "IMAGE", create, "images")
    save = g.add("SaveVideo", column, {"filename_prefix": prefix}, height=360)
    g.link(create, "VIDEO", save, "video")


def _native_ksampler(g: Graph, column: int, model_from: int, model_output: str, pos: int, neg: int,
                     length: int = 33) -> int:
    """ModelSamplingSD3 -> KSampler over an empty Wan video latent; returns the KSampler."""
    shift = g.add("ModelSamplingSD3", column, {"shift": 8.0}, height=80)
    g.link(model_from, model_output, shift, "model")
    latent = g.add("EmptyHunyuanLatentVideo", column, {"width": 832, "height": 480, "length": length},
                   height=150)
    sampler = g.add("KSampler", column, {"steps": 30, "cfg": 6.0, "sampler_name": "uni_pc", "scheduler": "simple"},
                    height=270)
    g.link(shift, "MODEL", sampler, "model")
    g.link(pos, "CONDITIONING", sampler, "positive")
    g.link(neg, "CONDITIONING", sampler, "negative")
    g.link(latent, "LATENT", sampler, "latent_image")
    return sampler


def wan_motion_lora_native(info) -> dict:
    g = Graph(info)
    g.add("Note", 0, {"text": (
        "Wan 2.1: train a motion LoRA here, sample it in core's own Wan graph.\n\n"
        f"1. Put {WAN_13B} in models/diffusion_models, {WAN_VAE} in models/vae and {UMT5} in "
        "models/text_encoders (the same files feed Load Video Model and core's loaders).\n"
        "2. Upload the reference clip in Load Reference Video (Wan clips are 1 + 4k frames: 17 here).\n"
        "3. Queue: Train Motion LoRA learns the motion; Apply Motion LoRA (native MODEL) puts it on core's "
        "UNETLoader model for KSampler; Save Motion LoRA writes it in core's Wan layout to models/loras/wan_motion/.\n"
        "Later runs: skip training and load that file with core's LoraLoaderModelOnly (every key loads).")},
        height=280)
    model = g.add("MDLoadVideoModel", 0, {"model": f"diffusion model: {WAN_13B}", "vae": WAN_VAE,
                                          "text_encoder": UMT5}, height=230)
    clip = g.add("MDLoadReferenceVideo", 0, {"video": "reference_motion.mp4", "caption": "a man is skateboarding",
                                              "frame_cap": 17, "width": 480, "height": 272}, height=460)
    trainer = g.add("MDTrainMotionLoRA", 1, {"recipe": "motion_director", "width": 480, "height": 272,
                                             "frames": 17, "validate_every": 100, "name": "skateboarding"},
                    height=620)
    g.link(model, "video_model", trainer, "video_model")
    g.link(clip, "clips", trainer, "clips")
    save = g.add("MDSaveMotionLoRA", 1, {"filename_prefix": "wan_motion/skateboarding", "format": "comfyui"},
                 height=150)
    g.link(trainer, "motion_lora", save, "lora")
    unet = g.add("UNETLoader", 2, {"unet_name": WAN_13B}, height=110)
    apply = g.add("MDApplyMotionLoRANative", 2, {"strength": 1.0}, height=200)
    g.link(unet, "MODEL", apply, "model")
    g.link(trainer, "motion_lora", apply, "lora")
    pos, neg = _native_prompts(g, 2, "a bear is skateboarding in the snow")
    sampler = _native_ksampler(g, 3, apply, "model", pos, neg)
    _native_decode(g, 4, sampler, "wan_motion/bear")
    return g.to_json()


def wan22_a14b_two_experts(info) -> dict:
    g = Graph(info)
    high_file, low_file = ("wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors",
                           "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors")
    g.add("Note", 0, {"text": (
        "Wan 2.2 A14B: both experts, the motion LoRA on the high-noise one.\n\n"
        "The A14B denoises the first, noisy half of the schedule with the high-noise expert and the rest with the "
        "low-noise one: two KSamplerAdvanced over one 20-step schedule (0-10, then 10-end). Motion forms in the "
        "noisy steps, so the motion LoRA is trained on the high-noise expert (Load Video Model, wan_expert "
        "high_noise) and goes on that expert only; each expert's LoRA is its own file.\n"
        f"Put {high_file} and {low_file} in models/diffusion_models, {WAN_VAE} in models/vae, {UMT5} in "
        "models/text_encoders, and the LoRA saved by Save Motion LoRA (format comfyui) in models/loras/wan_motion/.")},
        height=300)
    pos, neg = _native_prompts(g, 0, "a bear is skateboarding in the snow")
    latent = g.add("EmptyHunyuanLatentVideo", 0, {"width": 832, "height": 480, "length": 81}, height=150)
    high = g.add("UNETLoader", 1, {"unet_name": high_file}, title="High-noise expert", height=110)
    lora = g.add("LoraLoaderModelOnly", 1, {"lora_name": "wan_motion/skateboarding_high_noise_00001.safetensors",
                                            "strength_model": 1.0}, height=130)
    g.link(high, "MODEL", lora, "model")
    low = g.add("UNETLoader", 1, {"unet_name": low_file}, title="Low-noise expert", height=110)
    samplers = []
    for name, model, start, end, noise, leftover in (("high", lora, 0, 10, "enable", "enable"),
                                                      ("low", low, 10, 10000, "disable", "disable")):
        shift = g.add("ModelSamplingSD3", 2, {"shift": 8.0}, height=80)
        g.link(model, "MODEL", shift, "model")
        sampler = g.add("KSamplerAdvanced", 3, {
            "add_noise": noise, "steps": 20, "cfg": 3.5, "sampler_name": "euler", "scheduler": "simple",
            "start_at_step": start, "end_at_step": end, "return_with_leftover_noise": leftover},
            title=f"{name}-noise expert: steps {start}-{'end' if end > 20 else end}", height=330)
        g.link(shift, "MODEL", sampler, "model")
        g.link(pos, "CONDITIONING", sampler, "positive")
        g.link(neg, "CONDITIONING", sampler, "negative")
        samplers.append(sampler)
    g.link(latent, "LATENT", samplers[0], "latent_image")
    g.link(samplers[0], "LATENT", samplers[1], "latent_image")
    _native_decode(g, 4, samplers[1], "wan22/bear")
    return g.to_json()


def motion_and_look_native(info) -> dict:
    g = Graph(info)
    g.add("Note", 0, {"text": (
        "One motion LoRA + one appearance LoRA, each in its own step range, on core's Wan MODEL.\n\n"
        "Motion forms in the early, noisy part of the schedule and detail in the late part: the motion LoRA acts "
        "from 0% to 60%, the appearance LoRA from 30% to the end. Ranges are shares of the schedule (as core's "
        "hook keyframes), so they mean the same in KSampler and SamplerCustomAdvanced. Put the LoRAs in "
        f"models/motion_loras and models/loras, {WAN_13B} in models/diffusion_models.")}, height=230)
    motion = g.add("MDLoadMotionLoRA", 0, {"lora_name": "dance_spin.safetensors"}, height=200)
    look = g.add("MDLoadAppearanceLoRA", 0, {"lora_name": "watercolour_style.safetensors"}, height=220)
    unet = g.add("UNETLoader", 1, {"unet_name": WAN_13B}, height=110)
    first = g.add("MDApplyMotionLoRANative", 1, {"strength": 1.0, "end_percent": 0.6}, title="Motion: 0-60%",
                  height=200)
    g.link(unet, "MODEL", first, "model")
    g.link(motion, "lora", first, "lora")
    second = g.add("MDApplyMotionLoRANative", 1, {"strength": 0.8, "start_percent": 0.3}, title="Look: 30-100%",
                   height=200)
    g.link(first, "model", second, "model")
    g.link(look, "lora", second, "lora")
    pos, neg = _native_prompts(g, 2, "a robot dancing in a city street, watercolour")
    sampler = _native_ksampler(g, 3, second, "model", pos, neg)
    _native_decode(g, 4, sampler, "native/robot_dance")
    return g.to_json()


WORKFLOWS = {
    "shapes_t2v_demo.json": shapes_demo,
    "shapes_wan_demo.json": shapes_wan_demo,
    "motiondirector_one_clip.json": one_clip,
    "motion_concept_several_clips.json": several_clips,
    "stacked_motions_and_look.json": stacked,
    "vmc_noise_prior.json": vmc_noise_prior,
    "wan_motion_lora_native.json": wan_motion_lora_native,
    "wan22_a14b_two_experts.json": wan22_a14b_two_experts,
    "motion_and_look_native.json": motion_and_look_native,
}


def all_workflows() -> dict:
    """WORKFLOWS and the image-to-video ones (make_i2v_workflows.py builds on the helpers here)."""
    from .make_i2v_workflows import I2V_WORKFLOWS

    return {**WORKFLOWS, **I2V_WORKFLOWS}


def main(names: list[str] | None = None) -> None:
    """Write every workflow, or only ``names`` (file names as in all_workflows()), so adding one does not rewrite
    the others."""
    workflows = all_workflows()
    unknown = set(names or ()) - set(workflows)
    if unknown:
        raise SystemExit(f"unknown workflow(s) {sorted(unknown)}; known: {', '.join(workflows)}")
    with ComfyServer() as server:
        info = server.object_info()
    for name, build in workflows.items():
        if names and name not in names:
            continue
        (OUT / name).write_text(json.dumps(build(info), indent=1) + "\n")
        print(f"wrote workflows/{name}")


if __name__ == "__main__":
    main(sys.argv[1:] or None)
