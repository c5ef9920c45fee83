"""End-to-end: the built-in models' demo workflows, exactly as shipped, in a real ComfyUI.

Unlike the tiny-model runs in test_e2e_workflows.py, every combo value is checked (the model is offered as
"built-in: ShapesT2V" / "built-in: ShapesWan" and the bundled reference clip is in the input folder), and each
workflow runs on the committed weights with only its step counts shortened. ShapesWan is a folder of the real Wan
classes, so its run goes through the pack's Wan loader, trainer and flow sampler.
"""

import json
import shutil
from pathlib import Path

import pytest

from motion_core.lora import load_lora
from motion_core.video import load_reference_video
from tests.harness.workflow_api import to_api_prompt

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "motion_core" / "toy" / "assets"
# name (also the LoRA folder) -> (workflow, bundled clip, model choice, frames, LoRA family)
DEMOS = {
    "shapes_t2v": ("shapes_t2v_demo.json", "shapes_circle_reference.gif", "built-in: ShapesT2V", 8, "unet3d"),
    "shapes_wan": ("shapes_wan_demo.json", "shapes_circle_reference_9f.gif", "built-in: ShapesWan", 9, "wan"),
}


def _demo_prompt(comfy, name: str) -> dict:
    workflow, reference = DEMOS[name][:2]
    shutil.copy(ASSETS / reference, comfy.input_dir / reference)
    return to_api_prompt(json.loads((ROOT / "workflows" / workflow).read_text()), comfy.object_info(),
                         check_combos=True)


@pytest.mark.parametrize("name", DEMOS)
def test_demo_workflow_offers_the_built_in_model_and_the_bundled_clip(comfy, name):
    _, reference, model, _, _ = DEMOS[name]
    kinds = {node["class_type"]: node["inputs"] for node in _demo_prompt(comfy, name).values()}
    assert kinds["MDLoadVideoModel"]["model"] == model
    assert kinds["MDLoadReferenceVideo"]["video"] == reference


@pytest.mark.parametrize("name", DEMOS)
def test_demo_workflow_trains_and_samples_on_the_built_in_model(comfy, name):
    frames, family = DEMOS[name][3:]
    folder = comfy.models_dir / "motion_loras" / name
    saved_before = set(folder.glob("circle_*.safetensors"))
    prompt = _demo_prompt(comfy, name)
    for node in prompt.values():
        if node["class_type"] == "MDTrainMotionLoRA":
            node["inputs"].update(steps=6, validate_every=3, checkpoint_every=0)
        elif node["class_type"] == "MDSampleVideo":
            node["inputs"].update(steps=8)
    result = comfy.run(prompt, timeout=900)
    assert result.status == "success", result.error_text
    videos = result.videos
    assert videos, result.outputs
    written = comfy.output_dir / videos[0].get("subfolder", "") / videos[0]["filename"]
    clip = load_reference_video(written)
    assert tuple(clip.frames.shape) == (frames, 64, 64, 3)
    assert clip.frames.float().std() > 5, "the sample is blank"  # quality itself is the quality tier's job
    saved = set(folder.glob("circle_*.safetensors")) - saved_before
    assert len(saved) == 1
    lora = load_lora(saved.pop())
    assert lora.family == family
    # The demo's high_noise_bias reached the trainer: the file records the skewed law it was trained with.
    recipe_config = lora.metadata["extra"]["training"]["recipe_config"]
    assert recipe_config["timestep_skew"] == 3.0
    if family == "unet3d":  # MotionDirector's temporal LoRA covers UNet3D's temporal convolutions; Wan has none
        assert recipe_config["temporal_conv"] is True
