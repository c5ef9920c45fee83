"""End-to-end: the ShapesT2V demo workflow, exactly as shipped, on the built-in model in a real ComfyUI.

Unlike the tiny-model runs in test_e2e_workflows.py, every combo value is checked (the model is offered as
"built-in: ShapesT2V" and the bundled reference clip is in the input folder), and the workflow runs on the committed
weights with only its step counts shortened.
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
WORKFLOW = ROOT / "workflows" / "shapes_t2v_demo.json"
REFERENCE = ROOT / "motion_core" / "toy" / "assets" / "shapes_circle_reference.gif"


def _demo_prompt(comfy) -> dict:
    shutil.copy(REFERENCE, comfy.input_dir / REFERENCE.name)
    return to_api_prompt(json.loads(WORKFLOW.read_text()), comfy.object_info(), check_combos=True)


def test_demo_workflow_offers_the_built_in_model_and_the_bundled_clip(comfy):
    prompt = _demo_prompt(comfy)
    kinds = {node["class_type"]: node["inputs"] for node in prompt.values()}
    assert kinds["MDLoadVideoModel"]["model"] == "built-in: ShapesT2V"
    assert kinds["MDLoadReferenceVideo"]["video"] == REFERENCE.name


def test_demo_workflow_trains_and_samples_on_the_built_in_model(comfy):
    saved_before = set((comfy.models_dir / "motion_loras" / "shapes_t2v").glob("circle_*.safetensors"))
    prompt = _demo_prompt(comfy)
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
    assert tuple(clip.frames.shape) == (8, 64, 64, 3)
    assert clip.frames.float().std() > 5, "the sample is blank"  # quality itself is the quality tier's job
    saved = set((comfy.models_dir / "motion_loras" / "shapes_t2v").glob("circle_*.safetensors")) - saved_before
    assert len(saved) == 1
    # The demo's high_noise_bias reached the trainer: the file records the skewed law it was trained with.
    recipe_config = load_lora(saved.pop()).metadata["extra"]["training"]["recipe_config"]
    assert recipe_config["timestep_skew"] == 3.0 and recipe_config["temporal_conv"] is True
