"""End-to-end: every shared workflow in workflows/ against a real ComfyUI (validation, and runs on a tiny model)."""

import json
from pathlib import Path

import pytest

from tests.harness.workflow_api import to_api_prompt
from tests.video_samples import write_sample_video

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("workflow", sorted((ROOT / "workflows").glob("*.json")), ids=lambda p: p.name)
def test_every_shared_workflow_validates_against_object_info(comfy, workflow):
    to_api_prompt(json.loads(workflow.read_text()), comfy.object_info(), check_combos=False)


def test_roundtrip_workflow_runs_and_writes_a_video(comfy):
    write_sample_video(comfy.input_dir / "md_demo_reference.mp4", frames=16, width=96, height=64, fps=8)
    workflow = json.loads((ROOT / "workflows" / "reference_clip_roundtrip.json").read_text())
    result = comfy.run(to_api_prompt(workflow, comfy.object_info()), timeout=300)
    assert result.status == "success", result.error_text
    saved = result.videos
    assert saved, result.outputs
    assert len(comfy.fetch_output(saved[0])) > 1000


TINY_OVERRIDES = {
    "MDLoadVideoModel": {"model": "diffusers: tiny_workflows", "dtype": "fp32", "device": "cpu"},
    "MDLoadReferenceVideo": {"width": 32, "height": 32, "frame_cap": 8, "min_frames": 4},
    "MDTrainMotionLoRA": {"steps": 2, "rank": 4, "width": 32, "height": 32, "frames": 4, "validate_every": 1,
                          "checkpoint_every": 0},
    "MDSampleVideo": {"steps": 2, "frames": 4, "width": 32, "height": 32},
}


def _tiny_variant(prompt: dict) -> dict:
    for node in prompt.values():
        node["inputs"].update(TINY_OVERRIDES.get(node["class_type"], {}))
    return prompt


def _provide_workflow_files(comfy, prompt):
    """Put the clips and LoRA files a workflow names where its nodes look for them, made for the tiny model."""
    import torch
    from motion_core.backbones import tiny_unet3d_backbone
    from motion_core.lora import save_lora
    from motion_core.lora.synthetic import random_lora

    backbone = tiny_unet3d_backbone(seed=0)
    for node in prompt.values():
        inputs, kind = node["inputs"], node["class_type"]
        if kind == "MDLoadReferenceVideo":
            write_sample_video(comfy.input_dir / inputs["video"], frames=10, width=48, height=40, fps=8)
        elif kind in ("MDLoadMotionLoRA", "MDLoadAppearanceLoRA") and inputs.get("lora_name", "none") != "none":
            motion = kind == "MDLoadMotionLoRA"
            folder = comfy.models_dir / ("motion_loras" if motion else "loras")
            folder.mkdir(parents=True, exist_ok=True)
            sets = ["temporal_attn"] if motion else ["spatial_self_attn"]
            with torch.no_grad():
                lora = random_lora(backbone, sets, rank=2, std=0.1, name=inputs["lora_name"],
                                   kind="motion" if motion else "appearance")
            save_lora(lora, folder / inputs["lora_name"])


@pytest.mark.parametrize("name", ["shapes_t2v_demo.json", "motiondirector_one_clip.json", "motion_concept_several_clips.json",
                                  "stacked_motions_and_look.json", "vmc_noise_prior.json"])
def test_shared_workflow_runs_to_completion_on_a_tiny_model(comfy, name):
    from motion_core.backbones import save_tiny_diffusers_folder

    if not (comfy.models_dir / "diffusers" / "tiny_workflows").exists():
        save_tiny_diffusers_folder(comfy.models_dir / "diffusers" / "tiny_workflows", family="unet3d")
    workflow = json.loads((ROOT / "workflows" / name).read_text())
    assert any(n["type"] == "Note" for n in workflow["nodes"]), "every shared workflow explains itself in a Note"
    prompt = _tiny_variant(to_api_prompt(workflow, comfy.object_info(), check_combos=False))
    _provide_workflow_files(comfy, prompt)
    result = comfy.run(prompt, timeout=600)
    assert result.status == "success", result.error_text
    assert result.videos, result.outputs
