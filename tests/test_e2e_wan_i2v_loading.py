"""End-to-end in a real headless ComfyUI: Load Video Model lists models/clip_vision and opens a Wan 2.1
image-to-video file with its CLIP vision file (tiny here), and the wrong pairs come back as node errors that name the
file to choose."""

import shutil

import pytest

from tests.wan_samples import write_tiny_wan_i2v_files

pytestmark = pytest.mark.e2e

I2V = "wan2.1_i2v_480p_tiny_fp16.safetensors"
T2V = "wan_tiny_fp16.safetensors"
CLIP = "clip_vision_h_tiny.safetensors"


def _place(comfy) -> None:
    made = comfy.models_dir / "wan_i2v_made"
    if not made.exists():
        write_tiny_wan_i2v_files(made)
    places = {"diffusion_models": (I2V, T2V), "vae": ("wan_tiny_vae.safetensors",),
              "text_encoders": ("umt5_tiny_fp16.safetensors",), "clip_vision": (CLIP,)}
    for folder, names in places.items():
        (comfy.models_dir / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            if not (comfy.models_dir / folder / name).exists():
                shutil.copy(made / name, comfy.models_dir / folder / name)


def _prompt(model: str, clip_vision: str) -> dict:
    return {
        "1": {"class_type": "MDLoadVideoModel", "inputs": {
            "model": f"diffusion model: {model}", "motion_module": "none", "dtype": "fp32", "device": "cpu",
            "vae": "wan_tiny_vae.safetensors", "text_encoder": "umt5_tiny_fp16.safetensors",
            "clip_vision": clip_vision}},
        "2": {"class_type": "MDSampleVideo", "inputs": {
            "video_model": ["1", 0], "prompt": "a red square", "negative_prompt": "", "seed": 1, "steps": 2,
            "cfg": 1.0, "frames": 5, "width": 16, "height": 16, "scheduler": "euler", "frame_rate": 8.0}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }


def test_load_video_model_lists_clip_vision_files_as_an_optional_input(comfy):
    _place(comfy)
    optional = comfy.object_info()["MDLoadVideoModel"]["input"]["optional"]
    spec = optional["clip_vision"]
    options = spec[0] if isinstance(spec[0], list) else spec[1]["options"]
    assert options[0] == "none" and CLIP in options


def test_an_i2v_file_opens_with_its_clip_vision_file_and_then_asks_for_a_start_image(comfy):
    """It loads as image-to-video (CLIP encoder included): Sample Video without a picture says what to connect."""
    _place(comfy)
    result = comfy.run(_prompt(I2V, CLIP), timeout=300)
    assert result.status == "error"
    assert "needs a start image" in result.error_text, result.error_text


@pytest.mark.parametrize("model, clip_vision, message", [
    (I2V, "none", "choose clip_vision_h.safetensors from models/clip_vision"),
    (T2V, CLIP, "reads no CLIP features"),
])
def test_wrong_pairs_are_node_errors_with_the_fix(comfy, model, clip_vision, message):
    _place(comfy)
    result = comfy.run(_prompt(model, clip_vision), timeout=300)
    assert result.status == "error"
    assert message in result.error_text, result.error_text
