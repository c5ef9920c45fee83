"""Issue 38 through a real, headless ComfyUI 0.3.75: what a saved workflow or a client can send that used to succeed
silently or fail late. Each case must end in a clear error from the pack (or, for the controls, in success), and the
server must still answer afterwards.

- NaN strengths and other non-finite floats (JSON's NaN reaches the nodes: core's min/max checks let NaN through);
- a Wan LoRA made for another model size, or with one layer of another size, on a native MODEL (core would log the
  layer and skip it, sampling as if there were no LoRA);
- Sample Video's frame rate NaN, refused before the sampler runs;
- device "cuda" on a server without a GPU;
- typed paths (Load Reference Video's `path`, Train Motion LoRA's `resume_from`) outside ComfyUI's folders: refused
  alike whether or not the target exists, with the switch that opens them named; inside the folders they still work.
"""

import json
import math
import shutil
import time
import uuid

import pytest
import requests
import torch
from test_e2e_hardening import _snapshot  # what a refused prompt must leave unchanged

pytestmark = pytest.mark.e2e

ANSWER_S = 5.0
WAN_FILE = "r3_wan_tiny.safetensors"
# Core's Wan detection fixes the timestep-embedding width at 256 (DESIGN.md, "Facts for the Wan tests").
COMFY_FREQ_DIM = 256
LIBRARY_WORDS = ("Traceback", "Errno", "NoneType", "KeyError", "object has no attribute")


# ---- helpers ----------------------------------------------------------------------------------------------------
def _attempt(comfy, prompt: dict, timeout: float = 300.0) -> tuple[str, str, str]:
    """("validation" | "execution" | "success", message, failing node type) for one prompt."""
    # Python's json writes NaN as the bare token NaN, as a saved workflow edited by hand or by a script may hold it
    # (requests' own json= refuses it); the server's JSON reader accepts it.
    body = json.dumps({"prompt": prompt, "client_id": uuid.uuid4().hex})
    resp = requests.post(f"{comfy.url}/prompt", data=body, headers={"Content-Type": "application/json"}, timeout=60)
    if resp.status_code != 200:
        data = resp.json()
        details = [e.get("details", "") for node in data.get("node_errors", {}).values()
                   for e in node.get("errors", [])]
        return "validation", " | ".join(details) or data.get("error", {}).get("message", resp.text), ""
    result = comfy.wait(resp.json()["prompt_id"], timeout=timeout)
    if result.status == "success":
        return "success", "", ""
    error = result.error or {}
    return "execution", error.get("exception_message", result.error_text), error.get("node_type", "")


def _answers(comfy) -> None:
    began = time.monotonic()
    assert comfy.get("/system_stats", timeout=ANSWER_S).ok and comfy.alive()
    assert time.monotonic() - began < ANSWER_S


def _refused(comfy, prompt, node_type, *words) -> str:
    kind, message, node = _attempt(comfy, prompt)
    assert kind == "execution" and node == node_type, (kind, node, message)
    for word in words:
        assert word in message, message
    assert not [w for w in LIBRARY_WORDS if w in message] and len(message) < 2000, message
    _answers(comfy)
    return message


@pytest.fixture(scope="module")
def world(comfy, tmp_path_factory):
    """A tiny UNet3D folder, a tiny Wan transformer file for UNETLoader, Wan LoRAs that fit it and that do not, a
    clip inside the input folder, one in the output folder and one outside every ComfyUI folder."""
    from motion_core.backbones import save_tiny_diffusers_folder, tiny_wan_backbone
    from motion_core.lora import MotionLora, save_lora
    from motion_core.lora.synthetic import random_lora
    from tests.video_samples import write_sample_video
    from tests.wan_samples import write_tiny_wan_files

    models = comfy.models_dir
    if not (models / "diffusers" / "r3_tiny" / "model_index.json").exists():
        save_tiny_diffusers_folder(models / "diffusers" / "r3_tiny", family="unet3d")
    made = tmp_path_factory.mktemp("r3_wan")
    write_tiny_wan_files(made, freq_dim=COMFY_FREQ_DIM)
    (models / "diffusion_models").mkdir(parents=True, exist_ok=True)
    shutil.copy(made / "wan_tiny_fp16.safetensors", models / "diffusion_models" / WAN_FILE)
    (models / "motion_loras").mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        good = random_lora(tiny_wan_backbone(), ("temporal_attn",), rank=2, alpha=2.0, std=0.1, name="r3_good")
    save_lora(good, models / "motion_loras" / "r3_good.safetensors", overwrite=True)
    wider = {}
    for key, tensor in good.tensors.items():  # the same layers, as a LoRA of a model twice as wide
        shape = list(tensor.shape)
        shape[1 if ".lora_A." in key else 0] *= 2
        wider[key] = torch.randn(shape) * 0.1
    save_lora(MotionLora(wider, dict(good.metadata, name="r3_wide")), models / "motion_loras" / "r3_wide.safetensors",
              overwrite=True)
    one_bad = dict(good.tensors)
    bad_module = min(k for k in one_bad if k.endswith(".lora_A.weight"))
    rank, width = one_bad[bad_module].shape
    one_bad[bad_module] = torch.randn(rank, width + 8) * 0.1
    save_lora(MotionLora(one_bad, dict(good.metadata, name="r3_one_bad")),
              models / "motion_loras" / "r3_one_bad.safetensors", overwrite=True)
    write_sample_video(comfy.input_dir / "r3_clip.mp4", frames=8, width=16, height=16, fps=8)
    write_sample_video(comfy.output_dir / "r3_made_here.mp4", frames=8, width=16, height=16, fps=8)
    outside = comfy.base_dir / "r3_outside"
    (outside / "frames").mkdir(parents=True, exist_ok=True)
    write_sample_video(outside / "clip.mp4", frames=8, width=16, height=16, fps=8)
    (outside / "checkpoint-step000002.pt").write_bytes(b"not a checkpoint, but it exists")
    # Named as the native MODEL names it (DESIGN.md: diffusers attn1/attn2/to_q/to_out.0 -> self_attn/cross_attn/q/o).
    module = bad_module.split(".", 1)[1].removesuffix(".lora_A.weight")
    for ours, core in (("attn1", "self_attn"), ("attn2", "cross_attn"), ("to_out.0", "o"), ("to_", "")):
        module = module.replace(ours, core)
    yield {"outside": outside, "bad_module": module}


def _model(device="cpu") -> dict:
    return {"class_type": "MDLoadVideoModel", "inputs": {
        "model": "diffusers: r3_tiny", "motion_module": "none", "dtype": "fp32", "device": device}}


def _video(path="", video="r3_clip.mp4", **widgets) -> dict:
    return {"class_type": "MDLoadReferenceVideo", "inputs": {
        "video": video, "caption": "a square", "start_frame": 0, "frame_cap": 8, "min_frames": 1, "every_nth": 1,
        "target_fps": 0.0, "width": 16, "height": 16, "resize_mode": "crop", "path": path, "folder_fps": 8.0,
        **widgets}}


def _native(lora_file, strength=1.0) -> dict:
    return {
        "unet": {"class_type": "UNETLoader", "inputs": {"unet_name": WAN_FILE, "weight_dtype": "default"}},
        "lora": {"class_type": "MDLoadMotionLoRA", "inputs": {
            "lora_name": lora_file, "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}},
        "apply": {"class_type": "MDApplyMotionLoRANative", "inputs": {
            "model": ["unet", 0], "lora": ["lora", 1], "strength": strength, "start_percent": 0.0,
            "end_percent": 1.0}},
        "show": {"class_type": "PreviewAny", "inputs": {"source": ["apply", 0]}},
    }


def _sample(**widgets) -> dict:
    inputs = {"video_model": ["m", 0], "prompt": "a ball", "negative_prompt": "", "seed": 0, "steps": 2, "cfg": 1.0,
              "frames": 8, "width": 16, "height": 16, "scheduler": "ddim", "frame_rate": 8.0, **widgets}
    return {"m": _model(), "s": {"class_type": "MDSampleVideo", "inputs": inputs},
            "show": {"class_type": "PreviewAny", "inputs": {"source": ["s", 1]}}}


def _train(resume_from: str) -> dict:
    return {"m": _model(), "v": _video(),
            "t": {"class_type": "MDTrainMotionLoRA", "inputs": {
                "video_model": ["m", 0], "clips": ["v", 2], "recipe": "naive", "steps": 1, "learning_rate": 0.0,
                "rank": 2, "width": 16, "height": 16, "frames": 8, "seed": 0, "checkpoint_every": 0,
                "validate_every": 0, "name": "r3_resume", "resume_from": resume_from}},
            "show": {"class_type": "PreviewAny", "inputs": {"source": ["t", 0]}}}


# ---- 6: every float input of the pack refuses NaN -----------------------------------------------------------------
# Each float widget of the pack and where its NaN/inf refusal is tested (unit tier unless marked e2e). A float input
# added without such a check makes the inventory test fail until it is listed here with its test.
FLOAT_INPUTS = {
    ("MDApplyMotionLoRANative", "strength"): "e2e + test_native_apply_refuses_a_nan_or_inf_strength",
    ("MDApplyMotionLoRANative", "start_percent"): "test_native_lora_entries (check_range)",
    ("MDApplyMotionLoRANative", "end_percent"): "test_native_lora_entries (check_range)",
    ("MDReferenceNoiseNative", "noise_prior_p"): "ReferenceNoisePlan (test_native_reference_noise)",
    ("MDReferenceNoiseNative", "shift"): "ReferenceNoisePlan (test_native_reference_noise)",
    ("MDLoadMotionLoRA", "strength"): "e2e (LoraStackEntry)",
    ("MDLoadMotionLoRA", "start_percent"): "LoraStackEntry",
    ("MDLoadMotionLoRA", "end_percent"): "LoraStackEntry",
    ("MDLoadAppearanceLoRA", "strength"): "LoraStackEntry",
    ("MDLoadAppearanceLoRA", "start_percent"): "LoraStackEntry",
    ("MDLoadAppearanceLoRA", "end_percent"): "LoraStackEntry",
    ("MDSampleVideo", "cfg"): "e2e (validate_request)",
    ("MDSampleVideo", "frame_rate"): "e2e + test_sample_request_refuses_a_bad_frame_rate_before_the_denoiser_runs",
    ("MDSampleVideo", "noise_prior_p"): "validate_request",
    ("MDSampleVideo", "cfg_low_noise"): "validate_request",
    ("MDTrainMotionLoRA", "learning_rate"): "e2e + test_training_numbers_must_be_finite",
    ("MDTrainMotionLoRA", "high_noise_bias"): "test_training_numbers_must_be_finite (timestep_skew)",
    ("MDTrainMotionLoRA", "start_image_dropout"): "test_each_lever_refuses_a_bad_value_and_names_it (nan)",
    ("MDLoadReferenceVideo", "target_fps"): "e2e + test_video_reading_rates_must_be_finite",
    ("MDLoadReferenceVideo", "folder_fps"): "test_video_reading_rates_must_be_finite",
    ("MDImagesToClips", "fps"): "test_a_clip_refuses_a_frame_rate_that_is_not_finite_and_positive",
}


def test_every_float_input_of_the_pack_is_covered(comfy):
    info = comfy.object_info()
    found = set()
    for node_id, node in info.items():
        if not node_id.startswith("MD"):
            continue
        for section in ("required", "optional"):
            for name, spec in node["input"].get(section, {}).items():
                if spec[0] == "FLOAT":
                    found.add((node_id, name))
    assert found == set(FLOAT_INPUTS)


def test_nan_strength_on_the_native_node_is_refused_not_sampled(comfy, world):
    _refused(comfy, _native("r3_good.safetensors", strength=math.nan), "MDApplyMotionLoRANative",
             "strength must be a finite number", "nan")


@pytest.mark.parametrize("node_type, prompt, words", [
    ("MDLoadMotionLoRA", lambda: {**_native("r3_good.safetensors"), "lora": {"class_type": "MDLoadMotionLoRA",
     "inputs": {"lora_name": "r3_good.safetensors", "strength": math.nan, "start_percent": 0.0,
                "end_percent": 1.0}}}, ("strength must be a finite number",)),
    ("MDSampleVideo", lambda: _sample(cfg=math.nan), ("CFG must be a finite number",)),
    ("MDSampleVideo", lambda: _sample(frame_rate=math.nan), ("frame rate (fps) must be a finite number",)),
    ("MDTrainMotionLoRA", lambda: {**_train(""), "t": {**_train("")["t"], "inputs": {
        **_train("")["t"]["inputs"], "learning_rate": math.nan}}}, ("lr must be positive and finite",)),
    ("MDLoadReferenceVideo", lambda: {"v": _video(target_fps=math.nan),
                                      "show": {"class_type": "PreviewAny", "inputs": {"source": ["v", 1]}}},
     ("target_fps must be",)),
], ids=["lora_strength", "cfg", "frame_rate", "learning_rate", "target_fps"])
def test_nan_floats_in_a_saved_workflow_are_node_errors(comfy, world, node_type, prompt, words):
    _refused(comfy, prompt(), node_type, *words)


# ---- 7: a LoRA of another size on a native MODEL ----------------------------------------------------------------
def test_a_fitting_wan_lora_applies_to_the_native_model(comfy, world):
    assert _attempt(comfy, _native("r3_good.safetensors"))[0] == "success"


def test_a_wan_lora_of_another_size_is_refused_naming_its_layers(comfy, world):
    _refused(comfy, _native("r3_wide.safetensors"), "MDApplyMotionLoRANative", "LoRA 'r3_wide' does not fit",
             "other shapes than the model's weights", "another size", "Nothing was applied")


def test_one_layer_of_another_size_among_good_ones_is_named(comfy, world):
    message = _refused(comfy, _native("r3_one_bad.safetensors"), "MDApplyMotionLoRANative", "1 of its")
    assert world["bad_module"] in message, message


# ---- 9: a device that is not there ------------------------------------------------------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: device cuda is valid here")
def test_device_cuda_without_a_gpu_names_the_choice_and_the_fix(comfy, world):
    prompt = {"m": _model("cuda"), "show": {"class_type": "PreviewAny", "inputs": {"source": ["m", 0]}}}
    _refused(comfy, prompt, "MDLoadVideoModel", "Load Video Model: device 'cuda' was asked for",
             "Pick one of: auto, cpu")


# ---- 11 and 12: typed paths stay inside ComfyUI's folders --------------------------------------------------------
def _video_prompt(path) -> dict:
    return {"v": _video(path=path), "show": {"class_type": "PreviewImage", "inputs": {"images": ["v", 0]}}}


def test_typed_video_paths_outside_are_refused_alike_and_serve_nothing(comfy, world):
    outside = world["outside"]
    temp = comfy.base_dir / "temp"
    before = _snapshot(temp, comfy.output_dir)
    messages = set()
    for there, absent in [(outside / "clip.mp4", outside / "absent.mp4"), (outside / "frames", outside / "none"),
                          (f"{comfy.input_dir}/../r3_outside/clip.mp4", f"{comfy.input_dir}/../r3_outside/no.mp4")]:
        for path in (str(there), str(absent)):
            message = _refused(comfy, _video_prompt(path), "MDLoadReferenceVideo", "MOTION_CORE_ALLOW_ANY_PATH=1",
                               "not found in ComfyUI's input, output, temp or models folders")
            messages.add(message.replace(repr(path), "NAME"))
    assert len(messages) == 1, messages
    assert _snapshot(temp, comfy.output_dir) == before


def test_typed_video_paths_inside_comfyuis_folders_still_load(comfy, world):
    for path in ("r3_clip.mp4", str(comfy.output_dir / "r3_made_here.mp4")):
        assert _attempt(comfy, _video_prompt(path))[0] == "success", path


def test_resume_from_cannot_probe_the_disk(comfy, world):
    outside = world["outside"]
    there = _refused(comfy, _train(str(outside / "checkpoint-step000002.pt")), "MDTrainMotionLoRA",
                     "MOTION_CORE_ALLOW_ANY_PATH=1")
    absent = _refused(comfy, _train(str(outside / "checkpoint-step000009.pt")), "MDTrainMotionLoRA")
    assert there.replace("000002", "N") == absent.replace("000009", "N")
    inside = comfy.output_dir / "motion_lora_checkpoints" / "r3_resume" / "checkpoint-step000001.pt"
    _refused(comfy, _train(str(inside)), "MDTrainMotionLoRA", "not found or not readable")
