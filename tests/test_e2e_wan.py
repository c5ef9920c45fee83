"""End-to-end on the Wan family in a real, headless ComfyUI 0.3.75: the files a user has (a diffusion-model file in
models/diffusion_models, its VAE in models/vae, UMT5 in models/text_encoders; or a diffusers folder) open in Load
Video Model, every recipe's trainer runs through the Train node, the LoRA is saved and sampled with."""

import io

import pytest
from PIL import Image

from tests.video_samples import write_sample_video
from tests.wan_samples import place_tiny_wan_files

pytestmark = pytest.mark.e2e


def _wan_files(comfy) -> dict:
    """The tiny Wan's files, copied where ComfyUI's own Wan workflows keep them."""
    return place_tiny_wan_files(comfy.models_dir)


def _model_and_clip(comfy, video: str) -> dict:
    files = _wan_files(comfy)
    write_sample_video(comfy.input_dir / video, frames=9, width=32, height=32, fps=8)
    return {
        "1": {"class_type": "MDLoadVideoModel", "inputs": {
            "model": f"diffusion model: {files['diffusion_models']}", "motion_module": "none", "dtype": "fp32",
            "device": "cpu", "vae": files["vae"], "text_encoder": files["text_encoders"]}},
        "2": {"class_type": "MDLoadReferenceVideo", "inputs": {
            "video": video, "caption": "a red square moves right", "start_frame": 0, "frame_cap": 9,
            "min_frames": 5, "every_nth": 1, "target_fps": 0.0, "width": 32, "height": 32, "resize_mode": "crop"}},
    }


def test_load_video_model_lists_the_wan_files_and_their_vae_and_text_encoder(comfy):
    files = _wan_files(comfy)
    inputs = comfy.object_info()["MDLoadVideoModel"]["input"]

    def options(spec):
        return spec[0] if isinstance(spec[0], list) else spec[1]["options"]
    assert f"diffusion model: {files['diffusion_models']}" in options(inputs["required"]["model"])
    assert files["vae"] in options(inputs["optional"]["vae"])
    assert files["text_encoders"] in options(inputs["optional"]["text_encoder"])


@pytest.mark.parametrize("recipe", ["motion_director", "vmc", "customize_a_video", "motion_crafter", "newmove",
                                    "det", "naive"])
def test_train_a_wan_motion_lora_then_save_and_sample_with_it(comfy, recipe):
    from motion_core.lora import load_lora

    prompt = {
        **_model_and_clip(comfy, "wan_clip.mp4"),
        "3": {"class_type": "MDTrainMotionLoRA", "inputs": {
            "video_model": ["1", 0], "clips": ["2", 2], "recipe": recipe, "steps": 2, "learning_rate": 0.0,
            "rank": 4, "width": 32, "height": 32, "frames": 5, "seed": 0, "checkpoint_every": 0,
            "validate_every": 2, "name": f"wan_{recipe}"}},
        "4": {"class_type": "MDSaveMotionLoRA", "inputs": {
            "lora": ["3", 0], "filename_prefix": f"wan/{recipe}", "format": "canonical"}},
        "5": {"class_type": "MDLoadMotionLoRA", "inputs": {
            "lora_name": "none", "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0,
            "trained_lora": ["3", 0]}},
        "6": {"class_type": "MDSampleVideo", "inputs": {
            "video_model": ["1", 0], "prompt": "a blue circle", "negative_prompt": "blurry", "seed": 1, "steps": 2,
            "cfg": 2.0, "frames": 5, "width": 32, "height": 32, "scheduler": "auto", "frame_rate": 8.0,
            "lora_stack": ["5", 0]}},
        "7": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}},
    }
    result = comfy.run(prompt, timeout=600)
    assert result.status == "success", result.error_text
    lora = load_lora(comfy.models_dir / "motion_loras" / "wan" / f"{recipe}_00001.safetensors")
    assert (lora.family, lora.recipe, lora.kind, lora.frames) == ("wan", recipe, "motion", 5)
    assert len(result.outputs["7"]["images"]) == 5
    if recipe == "det":  # the temporal kernel is saved beside the LoRA, so Sample Video can apply it
        assert lora.kernel and all(t.isfinite().all() for t in lora.kernel.values())


def test_a_wan_frame_count_the_vae_cannot_take_is_a_node_error_naming_the_fix(comfy):
    prompt = {
        **_model_and_clip(comfy, "wan_clip2.mp4"),
        "3": {"class_type": "MDSampleVideo", "inputs": {
            "video_model": ["1", 0], "prompt": "a blue circle", "negative_prompt": "", "seed": 1, "steps": 2,
            "cfg": 1.0, "frames": 16, "width": 32, "height": 32, "scheduler": "auto", "frame_rate": 8.0}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }
    result = comfy.run(prompt, timeout=300)
    assert result.status == "error" and "1 + 4·k frames (e.g. 13 or 17)" in result.error_text


def test_a_wan_model_without_its_vae_is_a_node_error_naming_the_folder(comfy):
    files = _wan_files(comfy)
    prompt = {
        "1": {"class_type": "MDLoadVideoModel", "inputs": {
            "model": f"diffusion model: {files['diffusion_models']}", "motion_module": "none", "dtype": "fp32",
            "device": "cpu", "text_encoder": files["text_encoders"]}},
        "2": {"class_type": "MDSampleVideo", "inputs": {
            "video_model": ["1", 0], "prompt": "x", "negative_prompt": "", "seed": 1, "steps": 1, "cfg": 1.0,
            "frames": 5, "width": 32, "height": 32, "scheduler": "auto", "frame_rate": 8.0}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }
    result = comfy.run(prompt, timeout=300)
    assert result.status == "error" and "models/vae" in result.error_text


def test_train_node_memory_options_train_and_leave_the_model_as_it_was(comfy):
    """fp8 storage of the frozen base and block offload (on the CPU the blocks 'move' to the CPU) through the node:
    the run succeeds, and a sample after it equals a sample before it."""
    sample = {"class_type": "MDSampleVideo", "inputs": {
        "video_model": ["1", 0], "prompt": "a blue circle", "negative_prompt": "", "seed": 4, "steps": 2,
        "cfg": 1.0, "frames": 5, "width": 32, "height": 32, "scheduler": "euler", "frame_rate": 8.0}}
    nodes = _model_and_clip(comfy, "wan_clip_memory.mp4")
    before = comfy.run({**nodes, "5": sample, "6": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}}},
                       timeout=300)
    assert before.status == "success", before.error_text
    prompt = {
        **nodes,
        "3": {"class_type": "MDTrainMotionLoRA", "inputs": {
            "video_model": ["1", 0], "clips": ["2", 2], "recipe": "motion_director", "steps": 2,
            "learning_rate": 0.0, "rank": 4, "width": 32, "height": 32, "frames": 5, "seed": 0,
            "checkpoint_every": 0, "validate_every": 0, "name": "wan_memory", "base_storage": "fp8",
            "block_offload": True}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 2]}},
    }
    trained = comfy.run(prompt, timeout=600)
    assert trained.status == "success", trained.error_text
    # Same model object (ComfyUI caches the loader); another frame rate makes ComfyUI run the sampler again.
    resample = {"class_type": "MDSampleVideo", "inputs": {**sample["inputs"], "frame_rate": 9.0}}
    after = comfy.run({**nodes, "5": resample, "6": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}}},
                      timeout=300)
    assert after.status == "success", after.error_text
    def pixels(result):  # the PNGs also carry the prompt text, which differs in frame_rate
        return [Image.open(io.BytesIO(comfy.fetch_output(i))).tobytes() for i in result.outputs["6"]["images"]]
    assert pixels(before) == pixels(after)
