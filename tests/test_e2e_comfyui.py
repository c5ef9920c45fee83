"""End-to-end: the pack inside a real, headless ComfyUI 0.3.75, driven over its HTTP API."""

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from tests.harness.comfy_server import PACK_NAME
from tests.video_samples import write_sample_video

pytestmark = pytest.mark.e2e

# The specification of what the pack registers: node id -> (required inputs, optional inputs, output types).
EXPECTED_NODES = {
    "MDLoadReferenceVideo": (
        ["video", "caption", "start_frame", "frame_cap", "min_frames", "every_nth", "target_fps", "width", "height", "resize_mode"],
        ["path", "folder_fps", "previous_clips"],
        ["IMAGE", "FLOAT", "MD_CLIPS"],
    ),
    "MDImagesToClips": (["images", "caption", "fps"], ["previous_clips"], ["MD_CLIPS"]),
    "MDLoadVideoModel": (["model", "motion_module", "dtype", "device"], ["vae", "text_encoder", "wan_expert",
                                                                          "wan_second_expert", "clip_vision"],
                         ["MD_MODEL"]),
    "MDLoadMotionLoRA": (["lora_name", "strength", "start_percent", "end_percent"],
                         ["previous_stack", "trained_lora"], ["MD_LORA_STACK", "MD_LORA"]),
    "MDLoadAppearanceLoRA": (["lora_name", "strength", "start_percent", "end_percent"],
                             ["previous_stack", "trained_lora", "video_model"], ["MD_LORA_STACK", "MD_LORA"]),
    "MDSaveMotionLoRA": (["lora", "filename_prefix", "format"], [], ["STRING"]),
    "MDTrainMotionLoRA": (["video_model", "clips", "recipe", "steps", "learning_rate", "rank", "width", "height",
                           "frames", "seed", "checkpoint_every", "validate_every", "name"],
                          ["training_caption", "preview_prompt", "regularisation_clips", "resume_from",
                           "base_storage", "block_offload", "high_noise_bias", "memory", "start_image",
                           "recolour", "shift_copies", "start_image_dropout", "preview_image"],
                          ["MD_LORA", "MD_LORA", "IMAGE"]),
    "MDSampleVideo": (["video_model", "prompt", "negative_prompt", "seed", "steps", "cfg", "frames", "width",
                       "height", "scheduler", "frame_rate"], ["lora_stack", "noise_prior_clips", "noise_prior_p",
                                                     "noise_prior_mode", "cfg_low_noise", "start_image"],
                      ["IMAGE", "FLOAT"]),
}


def _load_prompt(name, width=64, height=48, frame_cap=10, path=""):
    return {
        "1": {"class_type": "MDLoadReferenceVideo", "inputs": {
            "video": name, "caption": "a red square moves right", "start_frame": 0, "frame_cap": frame_cap,
            "min_frames": 1, "every_nth": 1, "target_fps": 0.0, "width": width, "height": height, "resize_mode": "crop",
            "path": path, "folder_fps": 8.0}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }


def test_pack_loads_without_import_errors(comfy):
    log = comfy.log()
    assert PACK_NAME in log, "the pack was not found in custom_nodes"
    bad = [line for line in log.splitlines() if PACK_NAME in line and ("IMPORT FAILED" in line or "Cannot import" in line)]
    assert bad == [], log[-6000:]
    import_times = log.split("Import times for custom nodes:")[-1].split("\n\n")[0]
    assert PACK_NAME in import_times and "(IMPORT FAILED)" not in import_times


def test_object_info_lists_every_node_with_declared_inputs(comfy):
    info = comfy.object_info()
    for node_id, (required, optional, outputs) in EXPECTED_NODES.items():
        assert node_id in info, f"{node_id} missing from /object_info"
        node = info[node_id]
        assert list(node["input"]["required"]) == required
        assert list(node["input"].get("optional", {})) == optional
        assert node["output"] == outputs
        assert len(set(node["output_name"])) == len(outputs), f"{node_id} has ambiguous output labels"
        assert node["category"].startswith("Motion LoRA")
        for section in ("required", "optional"):
            for name, spec in node["input"].get(section, {}).items():
                assert len(spec) > 1 and spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
    assert info["MDLoadReferenceVideo"]["input"]["required"]["video"][1].get("video_upload") is True


def test_load_reference_video_returns_requested_frames_and_size(comfy):
    write_sample_video(comfy.input_dir / "e2e_clip.mp4", frames=14, width=80, height=60, fps=8)
    result = comfy.run(_load_prompt("e2e_clip.mp4", width=64, height=48, frame_cap=10), timeout=300)
    assert result.status == "success", result.error_text
    images = result.outputs["2"]["images"]
    assert len(images) == 10
    first = Image.open(io.BytesIO(comfy.fetch_output(images[0])))
    assert first.size == (64, 48)


def test_bad_file_is_a_node_error_and_server_keeps_serving(comfy):
    (comfy.input_dir / "not_a_video.mp4").write_text("this is text, not a video")
    result = comfy.run(_load_prompt("not_a_video.mp4"), timeout=300)
    assert result.status == "error"
    assert result.error["node_type"] == "MDLoadReferenceVideo"
    assert "not_a_video.mp4" in result.error["exception_message"]
    assert comfy.alive()
    write_sample_video(comfy.input_dir / "after_error.gif", frames=6, width=32, height=24, fps=8)
    again = comfy.run(_load_prompt("after_error.gif", width=32, height=24, frame_cap=0), timeout=300)
    assert again.status == "success", again.error_text
    assert len(again.outputs["2"]["images"]) == 6


def test_missing_path_names_the_path(comfy):
    result = comfy.run(_load_prompt("", path="/nonexistent/dance.mp4"), timeout=300)
    assert result.status == "error"
    assert "/nonexistent/dance.mp4" in result.error["exception_message"]


def test_images_to_clips_chains_after_a_video_loader(comfy):
    write_sample_video(comfy.input_dir / "chain.webm", frames=8, width=32, height=32, fps=8)
    prompt = _load_prompt("chain.webm", width=32, height=32, frame_cap=8)
    prompt["3"] = {"class_type": "MDImagesToClips",
                   "inputs": {"images": ["1", 0], "caption": "again", "fps": ["1", 1], "previous_clips": ["1", 2]}}
    prompt["4"] = {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}}
    result = comfy.run(prompt, timeout=300)
    assert result.status == "success", result.error_text


def test_load_video_model_opens_a_diffusers_folder_from_models_dir(comfy):
    from motion_core.backbones import save_tiny_diffusers_folder

    save_tiny_diffusers_folder(comfy.models_dir / "diffusers" / "tiny_unet3d", family="unet3d")
    info = comfy.object_info()["MDLoadVideoModel"]
    assert info["output"] == ["MD_MODEL"]
    prompt = {
        "1": {"class_type": "MDLoadVideoModel", "inputs": {
            "model": "diffusers: tiny_unet3d", "motion_module": "none", "dtype": "auto", "device": "auto"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }
    result = comfy.run(prompt, timeout=300)
    assert result.status == "success", result.error_text
    shown = json.dumps(result.outputs["2"])
    assert "family='unet3d'" in shown and "tiny_unet3d" in shown and "float32" in shown


def test_load_video_model_reports_a_broken_folder(comfy):
    broken = comfy.models_dir / "diffusers" / "broken_model"
    broken.mkdir(parents=True, exist_ok=True)
    (broken / "model_index.json").write_text('{"_class_name": "TextToVideoSDPipeline"}')
    prompt = {"1": {"class_type": "MDLoadVideoModel", "inputs": {
        "model": "diffusers: broken_model", "motion_module": "none", "dtype": "auto", "device": "auto"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    result = comfy.run(prompt, timeout=300)
    assert result.status == "error"
    assert result.error["node_type"] == "MDLoadVideoModel"
    assert "broken_model" in result.error["exception_message"]


def _write_random_motion_lora(path):
    import torch
    from motion_core.backbones import tiny_unet3d_backbone
    from motion_core.lora import AdapterSpec, add_adapter, adapter_parameters, lora_from_adapter, save_lora

    backbone = tiny_unet3d_backbone(seed=0)
    add_adapter(backbone.denoiser, AdapterSpec("temporal", backbone.target_modules("temporal_attn"), rank=4,
                                               alpha=2.0, target_sets=("temporal_attn",)))
    with torch.no_grad():
        for p in adapter_parameters(backbone.denoiser, "temporal"):
            p.normal_()
    lora = lora_from_adapter(backbone.denoiser, "temporal", family=backbone.family,
                             base_fingerprint=backbone.fingerprint(), recipe="motion_director", name="wave")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_lora(lora, path)
    return lora


def test_load_motion_lora_then_save_writes_a_new_file_with_metadata(comfy):
    from motion_core.lora import load_lora

    original = _write_random_motion_lora(comfy.models_dir / "motion_loras" / "wave.safetensors")
    prompt = {
        "1": {"class_type": "MDLoadMotionLoRA", "inputs": {
            "lora_name": "wave.safetensors", "strength": 0.8, "start_percent": 0.0, "end_percent": 0.5}},
        "2": {"class_type": "MDSaveMotionLoRA", "inputs": {
            "lora": ["1", 1], "filename_prefix": "converted/wave", "format": "canonical"}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }
    result = comfy.run(prompt, timeout=300)
    assert result.status == "success", result.error_text
    written = comfy.models_dir / "motion_loras" / "converted" / "wave_00001.safetensors"
    assert written.exists()
    again = load_lora(written)
    assert again.alpha == original.alpha == 2.0 and again.rank == 4 and again.family == "unet3d"
    assert all((again.tensors[k] == v).all() for k, v in original.tensors.items())
    shown = json.dumps(result.outputs)
    assert "rank 4" in shown and "x0.8" in shown and "steps 0%..50%" in shown


def test_saving_a_unet3d_lora_in_animatediff_layout_is_a_clear_node_error(comfy):
    _write_random_motion_lora(comfy.models_dir / "motion_loras" / "wave2.safetensors")
    prompt = {
        "1": {"class_type": "MDLoadMotionLoRA", "inputs": {
            "lora_name": "wave2.safetensors", "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}},
        "2": {"class_type": "MDSaveMotionLoRA", "inputs": {
            "lora": ["1", 1], "filename_prefix": "ade/wave", "format": "animatediff"}},
    }
    result = comfy.run(prompt, timeout=300)
    assert result.status == "error" and result.error["node_type"] == "MDSaveMotionLoRA"
    assert "canonical" in result.error["exception_message"]
    assert not list((comfy.models_dir / "motion_loras").glob("ade/*.safetensors"))
    assert not list((comfy.models_dir / "animatediff_motion_lora").glob("**/*.safetensors"))


def _sample_prompt(model_name, seed=3, stack=None):
    prompt = {
        "1": {"class_type": "MDLoadVideoModel", "inputs": {
            "model": f"diffusers: {model_name}", "motion_module": "none", "dtype": "fp32", "device": "cpu"}},
        "2": {"class_type": "MDSampleVideo", "inputs": {
            "video_model": ["1", 0], "prompt": "a red circle", "negative_prompt": "", "seed": seed, "steps": 2,
            "cfg": 2.0, "frames": 4, "width": 32, "height": 32, "scheduler": "ddim", "frame_rate": 8.0}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }
    if stack:
        prompt.update(stack)
        prompt["2"]["inputs"]["lora_stack"] = ["10", 0]
    return prompt


def _frames(comfy, result, node="3"):
    return [comfy.fetch_output(image) for image in result.outputs[node]["images"]]


def test_sample_video_with_a_motion_lora_and_no_leak_into_the_next_prompt(comfy):
    from motion_core.backbones import save_tiny_diffusers_folder

    save_tiny_diffusers_folder(comfy.models_dir / "diffusers" / "tiny_sampler", family="unet3d")
    _write_random_motion_lora(comfy.models_dir / "motion_loras" / "sampler_wave.safetensors")
    base = comfy.run(_sample_prompt("tiny_sampler"), timeout=300)
    assert base.status == "success", base.error_text
    base_frames = _frames(comfy, base)
    assert len(base_frames) == 4
    assert Image.open(io.BytesIO(base_frames[0])).size == (32, 32)
    stack = {"10": {"class_type": "MDLoadMotionLoRA", "inputs": {
        "lora_name": "sampler_wave.safetensors", "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}}}
    with_lora = comfy.run(_sample_prompt("tiny_sampler", stack=stack), timeout=300)
    assert with_lora.status == "success", with_lora.error_text
    assert _frames(comfy, with_lora) != base_frames
    # the cached model must come back to its base weights: same seed, same frames as before the LoRA run
    again = comfy.run(_sample_prompt("tiny_sampler", seed=3), timeout=300)
    assert again.status == "success", again.error_text
    assert _frames(comfy, again) == base_frames


def test_sampling_with_a_lora_of_another_family_is_refused(comfy):
    import torch
    from motion_core.backbones import save_tiny_diffusers_folder, tiny_animatediff_backbone
    from motion_core.lora import AdapterSpec, add_adapter, lora_from_adapter, save_lora

    save_tiny_diffusers_folder(comfy.models_dir / "diffusers" / "tiny_refuse", family="unet3d")
    other = tiny_animatediff_backbone(seed=0)
    add_adapter(other.denoiser, AdapterSpec("t", other.target_modules("temporal_attn"), rank=2))
    with torch.no_grad():
        for name, p in other.denoiser.named_parameters():
            if "lora_B" in name:
                p.normal_()
    save_lora(lora_from_adapter(other.denoiser, "t", family=other.family, base_fingerprint=other.fingerprint()),
              comfy.models_dir / "motion_loras" / "animatediff_wave.safetensors")
    stack = {"10": {"class_type": "MDLoadMotionLoRA", "inputs": {
        "lora_name": "animatediff_wave.safetensors", "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}}}
    result = comfy.run(_sample_prompt("tiny_refuse", stack=stack), timeout=300)
    assert result.status == "error" and result.error["node_type"] == "MDSampleVideo"
    assert "animatediff" in result.error["exception_message"]


def _tiny_model_and_clip_nodes(comfy, model: str, video: str) -> dict:
    """Nodes "1" (a tiny UNet3D model) and "2" (an 8-frame 32x32 clip), with their files put in place."""
    from motion_core.backbones import save_tiny_diffusers_folder

    if not (comfy.models_dir / "diffusers" / model).exists():
        save_tiny_diffusers_folder(comfy.models_dir / "diffusers" / model, family="unet3d")
    write_sample_video(comfy.input_dir / video, frames=8, width=32, height=32, fps=8)
    return {
        "1": {"class_type": "MDLoadVideoModel", "inputs": {
            "model": f"diffusers: {model}", "motion_module": "none", "dtype": "fp32", "device": "cpu"}},
        "2": {"class_type": "MDLoadReferenceVideo", "inputs": {
            "video": video, "caption": "a red square moves right", "start_frame": 0, "frame_cap": 8,
            "min_frames": 4, "every_nth": 1, "target_fps": 0.0, "width": 32, "height": 32, "resize_mode": "crop"}},
    }


def test_train_motion_lora_then_save_and_sample_with_it(comfy):
    from motion_core.lora import load_lora

    prompt = {
        **_tiny_model_and_clip_nodes(comfy, "tiny_train", "train_clip.mp4"),
        "3": {"class_type": "MDTrainMotionLoRA", "inputs": {
            "video_model": ["1", 0], "clips": ["2", 2], "recipe": "motion_director", "steps": 4,
            "learning_rate": 0.0, "rank": 4, "width": 32, "height": 32, "frames": 4, "seed": 0,
            "checkpoint_every": 2, "validate_every": 2, "name": "e2e_motion"}},
        "4": {"class_type": "MDSaveMotionLoRA", "inputs": {
            "lora": ["3", 0], "filename_prefix": "e2e/trained", "format": "canonical"}},
        "5": {"class_type": "PreviewImage", "inputs": {"images": ["3", 2]}},
        "6": {"class_type": "MDLoadMotionLoRA", "inputs": {
            "lora_name": "none", "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0,
            "trained_lora": ["3", 0]}},
        "7": {"class_type": "MDSampleVideo", "inputs": {
            "video_model": ["1", 0], "prompt": "a blue circle", "negative_prompt": "", "seed": 1, "steps": 2,
            "cfg": 1.0, "frames": 4, "width": 32, "height": 32, "scheduler": "euler", "frame_rate": 8.0,
            "lora_stack": ["6", 0]}},
        "8": {"class_type": "PreviewImage", "inputs": {"images": ["7", 0]}},
    }
    result = comfy.run(prompt, timeout=600)
    assert result.status == "success", result.error_text
    saved = comfy.models_dir / "motion_loras" / "e2e" / "trained_00001.safetensors"
    lora = load_lora(saved)
    assert lora.kind == "motion" and lora.recipe == "motion_director" and lora.steps == 4 and lora.rank == 4
    assert lora.family == "unet3d"
    plot = Image.open(io.BytesIO(comfy.fetch_output(result.outputs["5"]["images"][0])))
    assert plot.size[0] > 100
    assert result.outputs["7"]["animated"] == [True]
    checkpoints = list((comfy.output_dir / "motion_lora_checkpoints" / "e2e_motion").glob("*.pt"))
    assert checkpoints, "checkpoint_every=2 should have written checkpoints"


def test_cancel_during_training_writes_a_checkpoint_and_the_server_carries_on(comfy):
    import time

    import requests

    prompt = {
        **_tiny_model_and_clip_nodes(comfy, "tiny_cancel", "cancel_clip.gif"),
        "3": {"class_type": "MDTrainMotionLoRA", "inputs": {
            "video_model": ["1", 0], "clips": ["2", 2], "recipe": "vmc", "steps": 5000, "learning_rate": 0.0,
            "rank": 2, "width": 32, "height": 32, "frames": 4, "seed": 0, "checkpoint_every": 20,
            "validate_every": 0, "name": "e2e_cancel"}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 2]}},
    }
    prompt_id = comfy.queue(prompt)
    folder = comfy.output_dir / "motion_lora_checkpoints" / "e2e_cancel"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list(folder.glob("*.pt")):  # training is running once one exists
        time.sleep(0.2)
    requests.post(f"{comfy.url}/interrupt", timeout=10)
    result = comfy.wait(prompt_id, timeout=300)
    assert result.status == "error"
    assert any(kind == "execution_interrupted" for kind, _ in result.messages), result.messages
    cancelled = [line for line in comfy.log().splitlines() if "Training cancelled after" in line]
    assert cancelled and str(folder) in cancelled[-1], "cancel must write a checkpoint first and say where"
    saved = cancelled[-1].split("checkpoint saved to ")[1].split(". Resume")[0]
    assert Path(saved).exists()
    assert comfy.alive()
