"""End-to-end in a real, headless ComfyUI 0.3.75: Load Video Model's "fp8 as stored" keeps a scaled-fp8 Wan file's
weights in fp8 on the CPU, samples what the widened model samples, and trains and samples a LoRA on it."""

import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.harness.comfy_server import ComfyServer
from tests.video_samples import write_sample_video
from tests.wan_samples import COMFY_FILES, place_tiny_wan_files

pytestmark = pytest.mark.e2e

SCALED = "wan_tiny_fp8_scaled.safetensors"
DTYPE_NODE = """
import json, os
import folder_paths


class MDTestWeightDtypes:
    RETURN_TYPES = ()
    FUNCTION = "report"
    OUTPUT_NODE = True
    CATEGORY = "testing"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"video_model": ("MD_MODEL",), "name": ("STRING", {"default": "dtypes.json"})}}

    def report(self, video_model, name):
        dtypes = sorted({str(p.dtype) for p in video_model.denoiser.parameters()})
        with open(os.path.join(folder_paths.get_output_directory(), name), "w") as out:
            json.dump(dtypes, out)
        return {}


NODE_CLASS_MAPPINGS = {"MDTestWeightDtypes": MDTestWeightDtypes}
"""
"""Test-only: the weight dtypes of the loaded denoiser, written to the output folder (never shipped)."""


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfy_fp8")
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "md_test_weight_dtypes.py").write_text(DTYPE_NODE)
    place_tiny_wan_files(base / "models", made=base / "wan_made")
    shutil.copy(base / "wan_made" / SCALED, base / "models" / "diffusion_models" / SCALED)
    with ComfyServer(base_dir=base) as server:
        yield server


def _loader(dtype: str) -> dict:
    return {"class_type": "MDLoadVideoModel", "inputs": {
        "model": f"diffusion model: {SCALED}", "motion_module": "none", "dtype": dtype, "device": "cpu",
        "vae": COMFY_FILES["vae"], "text_encoder": COMFY_FILES["text_encoders"]}}


def _sample(lora_stack=None) -> dict:
    inputs = {"video_model": ["1", 0], "prompt": "a blue circle", "negative_prompt": "", "seed": 3, "steps": 2,
              "cfg": 1.0, "frames": 5, "width": 32, "height": 32, "scheduler": "euler", "frame_rate": 8.0}
    if lora_stack is not None:
        inputs["lora_stack"] = lora_stack
    return {"class_type": "MDSampleVideo", "inputs": inputs}


def _pixels(comfy, result, node="3"):
    return np.stack([np.asarray(Image.open(io.BytesIO(comfy.fetch_output(i))).convert("RGB"), dtype=np.int16)
                     for i in result.outputs[node]["images"]])


def test_the_dtype_choice_is_listed_and_explained(comfy):
    spec = comfy.object_info()["MDLoadVideoModel"]["input"]["required"]["dtype"]
    options = spec[0] if isinstance(spec[0], list) else spec[1]["options"]
    assert "fp8 as stored" in options
    assert "fp8 as stored: on any device" in spec[1]["tooltip"]


def test_fp8_as_stored_samples_what_the_widened_model_samples(comfy):
    frames, dtypes = {}, {}
    for dtype in ("fp8 as stored", "fp32"):
        name = dtype.replace(" ", "_") + ".json"
        result = comfy.run({"1": _loader(dtype), "2": _sample(),
                            "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
                            "4": {"class_type": "MDTestWeightDtypes", "inputs": {"video_model": ["1", 0],
                                                                                  "name": name}}}, timeout=300)
        assert result.status == "success", result.error_text
        frames[dtype] = _pixels(comfy, result)
        dtypes[dtype] = json.loads((comfy.base_dir / "output" / name).read_text())
    assert dtypes == {"fp8 as stored": ["torch.float32", "torch.float8_e4m3fn"], "fp32": ["torch.float32"]}
    # both compute W8 x scale in float32 (tests/test_backbones_wan_fp8.py: outputs equal within 1e-6)
    assert frames["fp8 as stored"].shape == (5, 32, 32, 3)
    assert np.abs(frames["fp8 as stored"] - frames["fp32"]).max() <= 1


def test_a_lora_trains_and_samples_on_a_model_kept_in_fp8(comfy):
    write_sample_video(comfy.input_dir / "wan_fp8_clip.mp4", frames=9, width=32, height=32, fps=8)
    prompt = {
        "1": _loader("fp8 as stored"),
        "2": {"class_type": "MDLoadReferenceVideo", "inputs": {
            "video": "wan_fp8_clip.mp4", "caption": "a red square moves right", "start_frame": 0, "frame_cap": 9,
            "min_frames": 5, "every_nth": 1, "target_fps": 0.0, "width": 32, "height": 32, "resize_mode": "crop"}},
        "4": {"class_type": "MDTrainMotionLoRA", "inputs": {
            "video_model": ["1", 0], "clips": ["2", 2], "recipe": "naive", "steps": 2, "learning_rate": 0.0,
            "rank": 4, "width": 32, "height": 32, "frames": 5, "seed": 0, "checkpoint_every": 0,
            "validate_every": 0, "name": "wan_fp8"}},
        "5": {"class_type": "MDLoadMotionLoRA", "inputs": {
            "lora_name": "none", "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0,
            "trained_lora": ["4", 0]}},
        "6": _sample(["5", 0]),
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["6", 0]}},
    }
    result = comfy.run(prompt, timeout=600)
    assert result.status == "success", result.error_text
    assert len(result.outputs["3"]["images"]) == 5
