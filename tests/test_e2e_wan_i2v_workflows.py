"""End-to-end: the two image-to-video workflows of workflows/ run to completion in a real ComfyUI on the tiny Wan 2.1
I2V model (the CLIP kind of tests/wan_native_i2v_samples.py), as a user queues them but smaller.

The tiny variant changes sizes, steps and file names only, and swaps the loaders core cannot fill from tiny files for
the test-only nodes of tests/harness (see tests/test_e2e_wan_i2v_native.py): CLIPLoader + CLIPTextEncode become
text states of the tiny UMT5 (padded to 512 tokens, as Wan 2.1 I2V reads them), CLIPVisionLoader builds core's
ClipVisionModel with the tiny config. Core's VAELoader, VAEDecode, WanImageToVideo, CLIPVisionEncode, UNETLoader,
LoraLoaderModelOnly, KSampler and LoadImage run as they are.
"""

import json
from pathlib import Path

import pytest
import torch

from tests.harness.comfy_server import ComfyServer
from tests.harness.workflow_api import to_api_prompt
from tests.video_samples import write_sample_video
from tests.wan_native_i2v_samples import native_i2v_files, prepare_i2v_comfy_base

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]
START, SIZE, FRAMES, STEPS, CLIP_VIDEO = "tiny_start.png", 32, 5, 2, "tiny_reference.mp4"
FILES = native_i2v_files("clip")
VIDEO_MODEL = {"model": f"diffusion model: {FILES['diffusion_models']}", "motion_module": "none", "dtype": "fp32",
               "device": "cpu", "vae": FILES["vae"], "text_encoder": FILES["text_encoders"],
               "clip_vision": FILES["clip_vision"]}
TINY = {
    "MDLoadVideoModel": VIDEO_MODEL,
    "MDLoadReferenceVideo": {"video": CLIP_VIDEO, "width": SIZE, "height": SIZE, "frame_cap": FRAMES,
                             "min_frames": FRAMES},
    "MDTrainMotionLoRA": {"steps": 2, "rank": 4, "width": SIZE, "height": SIZE, "frames": FRAMES,
                          "validate_every": 0, "checkpoint_every": 0},
    "MDSampleVideo": {"steps": STEPS, "frames": FRAMES, "width": SIZE, "height": SIZE},
    "LoadImage": {"image": START},
    "UNETLoader": {"unet_name": FILES["diffusion_models"], "weight_dtype": "default"},
    "VAELoader": {"vae_name": FILES["vae"]},
    "WanImageToVideo": {"width": SIZE, "height": SIZE, "length": FRAMES},
    "KSampler": {"steps": STEPS},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfy_i2v_workflows")
    prepare_i2v_comfy_base(base, START, SIZE)
    write_sample_video(base / "input" / CLIP_VIDEO, frames=9, width=40, height=40, fps=8)
    with ComfyServer(base_dir=base, extra_args=["--fp32-text-enc"]) as comfy:
        yield comfy


def _tiny_variant(prompt: dict) -> dict:
    prompt = {k: v for k, v in prompt.items() if v["class_type"] != "CLIPLoader"}
    prompt.setdefault("tiny_md", {"class_type": "MDLoadVideoModel", "inputs": dict(VIDEO_MODEL)})
    for node in prompt.values():
        kind, inputs = node["class_type"], node["inputs"]
        inputs.update(TINY.get(kind, {}))
        if kind == "CLIPTextEncode":
            node.update(class_type="MDTestNativeTextStates", inputs={"video_model": ["tiny_md", 0],
                                                                     "text": inputs["text"], "tokens": 512})
        elif kind == "CLIPVisionLoader":
            node.update(class_type="MDTestTinyClipVision", inputs={"clip_name": FILES["clip_vision"]})
    return prompt


def _provide_lora(server, prompt):
    """The LoRA file the native workflow names, made for the tiny model (with the image keys k_img / v_img)."""
    from motion_core.backbones import load_backbone
    from motion_core.lora import save_lora
    from motion_core.lora.synthetic import random_lora

    names = [n["inputs"]["lora_name"] for n in prompt.values() if n["class_type"] == "LoraLoaderModelOnly"]
    if not names:
        return
    models = server.models_dir
    backbone = load_backbone(models / "diffusion_models" / FILES["diffusion_models"], vae=models / "vae" / FILES["vae"],
                             text_encoder=models / "text_encoders" / FILES["text_encoders"],
                             clip_vision=models / "clip_vision" / FILES["clip_vision"])
    image_kv = [n for n, _ in backbone.denoiser.named_modules() if n.endswith(("add_k_proj", "add_v_proj"))]
    with torch.no_grad():
        lora = random_lora(backbone, ["temporal_attn"], rank=2, std=0.1, name="skateboarding", extra_modules=image_kv)
    for name in names:
        save_lora(lora, models / "loras" / name, format="comfyui")


@pytest.mark.parametrize("name", ["wan_i2v_motion_lora.json", "wan_i2v_native.json"])
def test_i2v_workflow_runs_to_completion_on_the_tiny_wan_i2v(server, name):
    workflow = json.loads((ROOT / "workflows" / name).read_text())
    assert any(n["type"] == "Note" for n in workflow["nodes"]), "every shared workflow explains itself in a Note"
    info = server.object_info()
    prompt = _tiny_variant(to_api_prompt(workflow, info, check_combos=False))
    assert any(n["class_type"] == "LoadImage" for n in prompt.values()), "the user's start image is an input"
    _provide_lora(server, prompt)
    log_start = len(server.log())
    result = server.run(prompt, timeout=900)
    assert result.status == "success", result.error_text
    outputs = {k for k, v in prompt.items() if info.get(v["class_type"], {}).get("output_node")}
    assert outputs <= result.outputs.keys(), sorted(outputs - result.outputs.keys())
    assert result.videos, result.outputs
    log = server.log()[log_start:]
    assert "lora key not loaded" not in log and "NOT LOADED" not in log, log[-3000:]
