"""End-to-end, Wan 2.2 A14B in a real headless ComfyUI: the user's pair of expert files (*_high_noise_* and
*_low_noise_*, tiny here) opens in one Load Video Model, the high-noise expert (the model) is what Train Motion LoRA
trains, Save Motion LoRA names the file after that expert, and Sample Video runs both experts."""

import shutil

import pytest

from tests.video_samples import write_sample_video
from tests.wan_samples import write_tiny_wan_files

pytestmark = pytest.mark.e2e

HIGH = "wan_tiny_t2v_high_noise_fp16.safetensors"
LOW = "wan_tiny_t2v_low_noise_fp16.safetensors"


def _a14b_files(comfy) -> None:
    """Two tiny Wans of other seeds as the two experts, with the VAE and UMT5 of the first, where ComfyUI keeps them."""
    for seed, name in ((0, HIGH), (1, LOW)):
        made = comfy.models_dir / f"wan_a14b_made{seed}"
        if not made.exists():
            write_tiny_wan_files(made, seed)
        places = {"diffusion_models": ("wan_tiny_fp16.safetensors", name), "vae": ("wan_tiny_vae.safetensors",) * 2,
                  "text_encoders": ("umt5_tiny_fp16.safetensors",) * 2}
        for folder, (source, target) in places.items():
            (comfy.models_dir / folder).mkdir(parents=True, exist_ok=True)
            if not (comfy.models_dir / folder / target).exists():
                shutil.copy(made / source, comfy.models_dir / folder / target)


def _loader(second: str) -> dict:
    return {"class_type": "MDLoadVideoModel", "inputs": {
        "model": f"diffusion model: {HIGH}", "motion_module": "none", "dtype": "fp32", "device": "cpu",
        "vae": "wan_tiny_vae.safetensors", "text_encoder": "umt5_tiny_fp16.safetensors", "wan_second_expert": second}}


def _sample(model: str, stack: list | None = None) -> dict:
    inputs = {"video_model": [model, 0], "prompt": "a blue circle", "negative_prompt": "blurry", "seed": 1,
              "steps": 5, "cfg": 2.0, "frames": 5, "width": 32, "height": 32, "scheduler": "euler",
              "frame_rate": 8.0}
    return {"class_type": "MDSampleVideo", "inputs": {**inputs, **({"lora_stack": stack} if stack else {})}}


def test_an_a14b_pair_trains_the_high_noise_expert_saves_it_by_name_and_samples_with_both(comfy):
    from motion_core.backbones.wan.experts import lora_expert
    from motion_core.lora import load_lora

    _a14b_files(comfy)
    write_sample_video(comfy.input_dir / "a14b_clip.mp4", frames=9, width=32, height=32, fps=8)
    prompt = {
        "1": _loader(LOW),
        "2": {"class_type": "MDLoadReferenceVideo", "inputs": {
            "video": "a14b_clip.mp4", "caption": "a red square moves right", "start_frame": 0, "frame_cap": 9,
            "min_frames": 5, "every_nth": 1, "target_fps": 0.0, "width": 32, "height": 32, "resize_mode": "crop"}},
        "3": {"class_type": "MDTrainMotionLoRA", "inputs": {
            "video_model": ["1", 0], "clips": ["2", 2], "recipe": "naive", "steps": 2, "learning_rate": 0.0,
            "rank": 4, "width": 32, "height": 32, "frames": 5, "seed": 0, "checkpoint_every": 0,
            "validate_every": 2, "name": "a14b_dance"}},
        "4": {"class_type": "MDSaveMotionLoRA", "inputs": {
            "lora": ["3", 0], "filename_prefix": "a14b/dance", "format": "canonical"}},
        "5": {"class_type": "MDLoadMotionLoRA", "inputs": {
            "lora_name": "none", "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0,
            "trained_lora": ["3", 0]}},
        "6": _sample("1", ["5", 0]),
        "7": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}},
        # the high-noise expert alone, for comparison: the low-noise expert must have changed the result
        "8": _loader("none"),
        "9": _sample("8"),
        "10": {"class_type": "PreviewImage", "inputs": {"images": ["9", 0]}},
        "11": _sample("1"),
        "12": {"class_type": "PreviewImage", "inputs": {"images": ["11", 0]}},
    }
    result = comfy.run(prompt, timeout=900)
    assert result.status == "success", result.error_text
    assert len(result.outputs["7"]["images"]) == 5
    both = [comfy.fetch_output(image) for image in result.outputs["12"]["images"]]
    alone = [comfy.fetch_output(image) for image in result.outputs["10"]["images"]]
    assert both != alone  # the low-noise steps ran on the other expert

    saved = sorted((comfy.models_dir / "motion_loras" / "a14b").glob("dance_*.safetensors"))
    assert saved, "Save Motion LoRA wrote nothing"
    lora = load_lora(saved[-1])
    assert lora_expert(lora) == "high_noise"
    assert saved[-1].name == "dance_00001_high_noise.safetensors"


def test_a_second_expert_for_a_model_that_has_none_is_a_node_error_naming_the_fix(comfy):
    _a14b_files(comfy)
    shutil.copy(comfy.models_dir / "wan_a14b_made0" / "wan_tiny_fp16.safetensors",
                comfy.models_dir / "diffusion_models" / "wan_tiny_plain_fp16.safetensors")
    loader = _loader(LOW)
    loader["inputs"]["model"] = "diffusion model: wan_tiny_plain_fp16.safetensors"
    prompt = {"1": loader, "2": _sample("1"), "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    result = comfy.run(prompt, timeout=300)
    assert result.status == "error" and "not a Wan 2.2 A14B expert" in result.error_text
