"""End-to-end: the ShapesWan demo workflow, exactly as shipped, on the built-in Wan-family model in a real ComfyUI.

Every combo value is checked (the model is offered as "built-in: ShapesWan" and the bundled 9-frame clip is in the
input folder) and the workflow runs on the committed weights with only its step counts shortened: the Wan loader,
trainer and sampler of the pack on a diffusers folder of the real Wan classes.
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
WORKFLOW = ROOT / "workflows" / "shapes_wan_demo.json"
REFERENCE = ROOT / "motion_core" / "toy" / "assets" / "shapes_circle_reference_9f.gif"


def _demo_prompt(comfy) -> dict:
    shutil.copy(REFERENCE, comfy.input_dir / REFERENCE.name)
    return to_api_prompt(json.loads(WORKFLOW.read_text()), comfy.object_info(), check_combos=True)


def test_wan_demo_workflow_trains_and_samples_on_the_built_in_wan_model(comfy):
    saved_before = set((comfy.models_dir / "motion_loras" / "shapes_wan").glob("circle_*.safetensors"))
    prompt = _demo_prompt(comfy)
    kinds = {node["class_type"]: node["inputs"] for node in prompt.values()}
    assert kinds["MDLoadVideoModel"]["model"] == "built-in: ShapesWan"
    assert kinds["MDLoadReferenceVideo"]["video"] == REFERENCE.name
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
    assert tuple(clip.frames.shape) == (9, 64, 64, 3)
    assert clip.frames.float().std() > 5, "the sample is blank"  # quality itself is the quality tier's job
    saved = set((comfy.models_dir / "motion_loras" / "shapes_wan").glob("circle_*.safetensors")) - saved_before
    assert len(saved) == 1
    lora = load_lora(saved.pop())
    assert lora.family == "wan"
    assert lora.metadata["extra"]["training"]["recipe_config"]["timestep_skew"] == 3.0
