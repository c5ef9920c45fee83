"""End-to-end in a real ComfyUI 0.3.75: a prompt cut by the text encoder is text on the Sample Video node (issue 22),
and AnimateDiff-format motion LoRAs land in models/animatediff_motion_lora, the folder AnimateDiff-Evolved's "Load
AnimateDiff LoRA" lists, which our Load Motion LoRA lists too (issue 23).
"""

import json

import pytest

pytestmark = pytest.mark.e2e

LONG_PROMPT = ("a red circle moves left and a blue square moves right while a green triangle spins around slowly in "
               "the middle")
ADE_FOLDER = "animatediff_motion_lora"


def _shapes_sample(prompt: str) -> dict:
    return {
        "1": {"class_type": "MDLoadVideoModel", "inputs": {
            "model": "built-in: ShapesT2V", "motion_module": "none", "dtype": "fp32", "device": "cpu"}},
        "2": {"class_type": "MDSampleVideo", "inputs": {
            "video_model": ["1", 0], "prompt": prompt, "negative_prompt": "", "seed": 0, "steps": 2, "cfg": 1.0,
            "frames": 8, "width": 64, "height": 64, "scheduler": "ddim", "frame_rate": 8.0}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }


def test_a_prompt_cut_by_the_text_encoder_is_shown_on_the_sample_video_node(comfy):
    result = comfy.run(_shapes_sample(LONG_PROMPT), timeout=600)
    assert result.status == "success", result.error_text
    node = result.outputs["2"]
    [text] = node["text"]
    assert "is 39 tokens long but this model reads at most 14" in text
    assert '"le a green triangle spins around slowly in the middle" is lost' in text
    assert node["animated"] == [True] and node["images"], "the preview video is still shown next to the warning"
    assert "is 39 tokens long" in comfy.log()  # and logged for the console


def test_a_prompt_that_fits_shows_no_warning_on_the_node(comfy):
    result = comfy.run(_shapes_sample("a red circle moves left"), timeout=600)
    assert result.status == "success", result.error_text
    assert "text" not in result.outputs["2"]


def test_a_training_caption_cut_by_the_text_encoder_is_shown_on_the_train_node(comfy):
    import shutil
    from pathlib import Path

    reference = Path(__file__).resolve().parents[1] / "motion_core" / "toy" / "assets" / "shapes_circle_reference.gif"
    shutil.copy(reference, comfy.input_dir / reference.name)
    prompt = _shapes_sample("unused")
    del prompt["2"], prompt["3"]
    prompt.update({
        "2": {"class_type": "MDLoadReferenceVideo", "inputs": {
            "video": reference.name, "caption": "a green triangle moves in a circle", "start_frame": 0,
            "frame_cap": 8, "min_frames": 8, "every_nth": 1, "target_fps": 0.0, "width": 64, "height": 64,
            "resize_mode": "crop"}},
        "3": {"class_type": "MDTrainMotionLoRA", "inputs": {
            "video_model": ["1", 0], "clips": ["2", 2], "recipe": "naive", "steps": 1, "learning_rate": 0.0,
            "rank": 2, "width": 64, "height": 64, "frames": 8, "seed": 0, "checkpoint_every": 0,
            "validate_every": 0, "name": "cut_caption", "training_caption": LONG_PROMPT}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 2]}},
    })
    result = comfy.run(prompt, timeout=600)
    assert result.status == "success", result.error_text
    [text] = result.outputs["3"]["text"]
    assert "is 39 tokens long but this model reads at most 14" in text


def _write_animatediff_motion_lora(path):
    import torch

    from motion_core.backbones import tiny_animatediff_backbone
    from motion_core.lora import AdapterSpec, add_adapter, lora_from_adapter, save_lora

    backbone = tiny_animatediff_backbone(seed=0)
    add_adapter(backbone.denoiser, AdapterSpec("temporal", backbone.target_modules("temporal_attn"), rank=2,
                                               target_sets=("temporal_attn",)))
    with torch.no_grad():
        for name, p in backbone.denoiser.named_parameters():
            if "lora_B" in name:
                p.normal_()
    lora = lora_from_adapter(backbone.denoiser, "temporal", family=backbone.family,
                             base_fingerprint=backbone.fingerprint(), recipe="motion_director", name="ade_wave")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_lora(lora, path)
    return lora


def test_the_animatediff_motion_lora_folder_exists_without_animatediff_evolved(comfy):
    assert (comfy.models_dir / ADE_FOLDER).is_dir()


def _resave_prompt(lora_name: str, filename_prefix: str, fmt: str) -> dict:
    """Load Motion LoRA (a file of models/motion_loras) -> Save Motion LoRA in another format."""
    return {
        "1": {"class_type": "MDLoadMotionLoRA", "inputs": {
            "lora_name": lora_name, "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}},
        "2": {"class_type": "MDSaveMotionLoRA", "inputs": {
            "lora": ["1", 1], "filename_prefix": filename_prefix, "format": fmt}},
    }


def test_an_animatediff_format_save_lands_where_animatediff_evolved_looks_and_loads_back(comfy):
    from motion_core.lora import load_lora

    original = _write_animatediff_motion_lora(comfy.models_dir / "motion_loras" / "ade_wave.safetensors")
    result = comfy.run(_resave_prompt("ade_wave.safetensors", "ade/wave", "animatediff"), timeout=300)
    assert result.status == "success", result.error_text
    written = comfy.models_dir / ADE_FOLDER / "ade" / "wave_00001.safetensors"
    assert written.is_file()
    assert not (comfy.models_dir / "motion_loras" / "ade").exists()
    assert f"in models/{ADE_FOLDER} (animatediff)" in json.dumps(result.outputs["2"])
    again = load_lora(written)
    assert again.family == "animatediff" and set(again.modules()) == set(original.modules())

    entry = f"{ADE_FOLDER}: ade/wave_00001.safetensors"
    options = comfy.object_info()["MDLoadMotionLoRA"]["input"]["required"]["lora_name"][1]["options"]
    assert entry in options and "ade_wave.safetensors" in options

    load = {
        "1": {"class_type": "MDLoadMotionLoRA", "inputs": {
            "lora_name": entry, "strength": 0.7, "start_percent": 0.0, "end_percent": 1.0}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }
    loaded = comfy.run(load, timeout=300)
    assert loaded.status == "success", loaded.error_text
    assert "x0.7" in json.dumps(loaded.outputs)


def test_save_still_refuses_a_format_that_cannot_carry_the_loras_modules(comfy):
    from tests.test_e2e_comfyui import _write_random_motion_lora

    _write_random_motion_lora(comfy.models_dir / "motion_loras" / "unet3d_wave.safetensors")
    result = comfy.run(_resave_prompt("unet3d_wave.safetensors", "refused/wave", "animatediff"), timeout=300)
    assert result.status == "error" and result.error["node_type"] == "MDSaveMotionLoRA"
    assert "canonical" in result.error["exception_message"]
    assert not list((comfy.models_dir / ADE_FOLDER).glob("refused/*.safetensors"))
