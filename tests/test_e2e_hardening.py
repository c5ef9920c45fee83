"""Hostile widget values and a soak through a real, headless ComfyUI 0.3.75 (issue #21, end-to-end side).

Every path-taking widget of the pack gets values a careless or hostile client can send to /prompt: '..', absolute
paths, NUL bytes, very long names, links out of the folder, FIFOs and devices. Each must end in a clear error from
the pack (the same refusal whether or not the target exists, so errors cannot probe the disk), write nothing, and
leave the server answering. Link loops in the folders the pack lists must not stall /object_info. A soak of mixed
valid and invalid prompts checks that nothing accumulates in the server process.

Classes of input tried: parent-folder escapes ('../', 'a/../../'), absolute paths (existing and missing), NUL bytes,
names of 5,000 characters, links out of a models/input folder (to an existing and a missing target), a bare '..',
a label prefix the loader does not know, FIFOs and /dev/zero as files, link loops in models/diffusers and input/,
corrupt and NaN-holding model files, and a 40-prompt mix of valid samples and all of the above.
"""

import os
import time
import uuid

import pytest
import requests

pytestmark = pytest.mark.e2e

ANSWER_S = 5.0  # /system_stats after each hostile prompt
OBJECT_INFO_S = 15.0  # /object_info with link loops in the listed folders (our walks stop after 2 s per root)
# Soak bound on the server's RSS growth after warm-up: see test_a_soak_of_mixed_prompts_keeps_the_server_bounded.
RSS_GROWTH_MB = 100
LIBRARY_WORDS = ("Errno", "Traceback", "embedded null byte", "unpack requires", "HeaderTooLarge",
                 "object has no attribute", "NoneType", "KeyError")


# ---- helpers ----------------------------------------------------------------------------------------------------
def _attempt(comfy, prompt: dict, timeout: float = 180.0) -> tuple[str, str]:
    """("validation" | "execution" | "success", message) for one prompt; a hang fails the test."""
    resp = requests.post(f"{comfy.url}/prompt", json={"prompt": prompt, "client_id": uuid.uuid4().hex}, timeout=60)
    if resp.status_code != 200:
        data = resp.json()
        details = [e.get("details", "") for node in data.get("node_errors", {}).values()
                   for e in node.get("errors", [])]
        return "validation", " | ".join(details) or data.get("error", {}).get("message", resp.text)
    result = comfy.wait(resp.json()["prompt_id"], timeout=timeout)
    if result.status == "success":
        return "success", ""
    return "execution", result.error["exception_message"] if result.error else result.error_text


def _answers_quickly(comfy) -> float:
    began = time.monotonic()
    assert comfy.get("/system_stats", timeout=ANSWER_S).ok
    elapsed = time.monotonic() - began
    assert elapsed < ANSWER_S and comfy.alive()
    return elapsed


def _snapshot(*roots) -> set[str]:
    """Every path under the roots (links not followed): what a refused prompt must leave unchanged."""
    found = set()
    for root in roots:
        for here, dirs, names in os.walk(root, followlinks=False):
            found.update(os.path.join(here, n) for n in dirs + names)
    return found


def _normalised(message: str, value: str) -> str:
    """The refusal with the value it quotes removed (values differ, the text around them must not)."""
    shown = value.replace("\x00", "\\x00")
    shown = shown if len(shown) <= 200 else shown[:200] + "..."
    return message.replace(repr(shown), "NAME")


def _watched(comfy) -> list:
    return [comfy.models_dir, comfy.input_dir, comfy.output_dir, comfy.base_dir / "outside"]


@pytest.fixture(scope="module")
def world(comfy):
    """A tiny model, a LoRA that fits it, a clip, and the bait hostile values point at: a secret next to each
    folder and a folder outside, linked into each listed folder as 'up'."""
    from motion_core.backbones import save_tiny_diffusers_folder, tiny_unet3d_backbone
    from motion_core.lora import save_lora
    from motion_core.lora.synthetic import random_lora
    from tests.video_samples import write_sample_video

    models = comfy.models_dir
    if not (models / "diffusers" / "hard_tiny" / "model_index.json").exists():
        save_tiny_diffusers_folder(models / "diffusers" / "hard_tiny", family="unet3d")
    for folder in ("motion_loras", "loras", "checkpoints", "diffusion_models", "vae", "text_encoders",
                   "animatediff_models", "diffusers"):
        (models / folder).mkdir(parents=True, exist_ok=True)
    lora = random_lora(tiny_unet3d_backbone(0), ["temporal_attn"], seed=1, name="hard_dance")
    if not (models / "motion_loras" / "hard_dance.safetensors").exists():
        save_lora(lora, models / "motion_loras" / "hard_dance.safetensors")
    write_sample_video(comfy.input_dir / "hard_clip.mp4", frames=8, width=16, height=16, fps=8)
    outside = comfy.base_dir / "outside"
    (outside / "secretdir").mkdir(parents=True, exist_ok=True)
    for name in ("secret.txt", "secret.safetensors", "secret.mp4"):
        (outside / name).write_bytes(b"do not read me")
    (models / "secret.safetensors").write_bytes(b"do not read me")
    (comfy.base_dir / "secret.mp4").write_bytes(b"do not read me")
    for root in [*(models / f for f in ("motion_loras", "loras", "checkpoints", "diffusion_models", "vae",
                                         "text_encoders", "animatediff_models", "diffusers")), comfy.input_dir]:
        if not os.path.lexists(root / "up"):
            os.symlink(outside, root / "up")
    # Files the listings offer that are no weights at all: a FIFO, a link to /dev/zero, a corrupt file.
    fifo = models / "checkpoints" / "stuck.safetensors"
    if not fifo.exists():
        os.mkfifo(fifo)
    if not os.path.lexists(models / "checkpoints" / "zero.safetensors"):
        os.symlink("/dev/zero", models / "checkpoints" / "zero.safetensors")
    (models / "checkpoints" / "corrupt.safetensors").write_bytes(b"\xff" * 64)
    fifo_video = comfy.input_dir / "stuck.mp4"
    if not fifo_video.exists():
        os.mkfifo(fifo_video)
    yield {"outside": outside}
    for root in [models / "diffusers", models / "checkpoints", comfy.input_dir]:
        for name in ("up", "stuck.safetensors", "zero.safetensors", "stuck.mp4"):
            if os.path.lexists(root / name):
                os.unlink(root / name)
    for root in [*(models / f for f in ("motion_loras", "loras", "diffusion_models", "vae", "text_encoders",
                                         "animatediff_models"))]:
        if os.path.lexists(root / "up"):
            os.unlink(root / "up")


def _model_prompt(model="diffusers: hard_tiny", **widgets) -> dict:
    inputs = {"model": model, "motion_module": "none", "dtype": "fp32", "device": "cpu", **widgets}
    return {"1": {"class_type": "MDLoadVideoModel", "inputs": inputs},
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}


def _video_prompt(video="hard_clip.mp4", path="") -> dict:
    return {"1": {"class_type": "MDLoadReferenceVideo", "inputs": {
        "video": video, "caption": "a square", "start_frame": 0, "frame_cap": 8, "min_frames": 1, "every_nth": 1,
        "target_fps": 0.0, "width": 16, "height": 16, "resize_mode": "crop", "path": path, "folder_fps": 8.0}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}}}


def _lora_prompt(lora_name, node="MDLoadMotionLoRA") -> dict:
    return {"1": {"class_type": node, "inputs": {
        "lora_name": lora_name, "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}


def _save_prompt(prefix) -> dict:
    return {"1": {"class_type": "MDLoadMotionLoRA", "inputs": {
        "lora_name": "hard_dance.safetensors", "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}},
        "2": {"class_type": "MDSaveMotionLoRA", "inputs": {"lora": ["1", 1], "filename_prefix": prefix,
                                                           "format": "canonical"}}}


def _sample_prompt(seed: int, model="diffusers: hard_tiny") -> dict:
    prompt = _model_prompt(model)
    prompt["2"] = {"class_type": "MDSampleVideo", "inputs": {
        "video_model": ["1", 0], "prompt": "a ball", "negative_prompt": "", "seed": seed, "steps": 2, "cfg": 1.0,
        "frames": 8, "width": 16, "height": 16, "scheduler": "ddim", "frame_rate": 8.0}}
    prompt["3"] = {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}}
    return prompt


# Each dropdown widget: how a value becomes a prompt, and a bait pair (existing target, missing target) per class.
DROPDOWNS = {
    "model/diffusers": (lambda v: _model_prompt(f"diffusers: {v}"), "diffusers"),
    "model/checkpoint": (lambda v: _model_prompt(f"checkpoint: {v}"), "checkpoints"),
    "model/diffusion_model": (lambda v: _model_prompt(f"diffusion model: {v}"), "diffusion_models"),
    "motion_module": (lambda v: _model_prompt(motion_module=v), "animatediff_models"),
    "vae": (lambda v: _model_prompt(vae=v), "vae"),
    "text_encoder": (lambda v: _model_prompt(text_encoder=v), "text_encoders"),
    "motion_lora": (lambda v: _lora_prompt(v), "motion_loras"),
    "appearance_lora": (lambda v: _lora_prompt(v, "MDLoadAppearanceLoRA"), "loras"),
    "video": (lambda v: _video_prompt(video=v), "input"),
}


def _bait_pairs(comfy, folder: str, suffix: str) -> list[tuple[str, str]]:
    """(value naming a file that exists, the same value naming one that does not), per class of escape."""
    secret = comfy.base_dir / "outside" / f"secret{suffix}"
    parent_secret = "../secret.safetensors" if folder != "input" else "../secret.mp4"
    return [
        (parent_secret, parent_secret.replace("secret", "absent")),
        (f"a/../../{parent_secret[3:]}", f"a/../../{parent_secret[3:]}".replace("secret", "absent")),
        (str(secret), str(secret).replace("secret", "absent")),
        ("up/secret.txt", "up/absent.txt"),  # through a link the user did not make a listed entry of
        ("up/secretdir", "up/absentdir"),
    ]


LONE = ["..", "a\x00b.safetensors", "x" * 5000, "up/../../secret.safetensors", "~root/x.safetensors"]


@pytest.mark.parametrize("widget", sorted(DROPDOWNS))
def test_hostile_dropdown_values_are_refused_alike_write_nothing_and_the_server_answers(comfy, world, widget):
    make, folder = DROPDOWNS[widget]
    suffix = ".mp4" if folder == "input" else ".safetensors"
    before = _snapshot(*_watched(comfy))
    for existing, missing in _bait_pairs(comfy, folder, suffix):
        outcomes = []
        for value in (existing, missing):
            kind, message = _attempt(comfy, make(value))
            assert kind in ("validation", "execution"), f"{widget}={value!r} was accepted"
            assert "is not one of the files in" in message, f"{widget}={value!r}: {message}"
            assert not [w for w in LIBRARY_WORDS if w in message], message
            outcomes.append((kind, _normalised(message, value)))
            _answers_quickly(comfy)
        assert outcomes[0] == outcomes[1], f"{widget}: refusal differs when the target exists: {outcomes}"
    for value in LONE:
        kind, message = _attempt(comfy, make(value))
        assert kind in ("validation", "execution") and "is not one of the files in" in message, (widget, message)
        assert len(message) < 2000 and not [w for w in LIBRARY_WORDS if w in message], message
        _answers_quickly(comfy)
    assert _snapshot(*_watched(comfy)) == before


@pytest.mark.parametrize("name", ["stuck.safetensors", "zero.safetensors", "corrupt.safetensors"])
def test_listed_files_that_are_no_weights_are_node_errors_not_hangs(comfy, world, name):
    began = time.monotonic()
    kind, message = _attempt(comfy, _model_prompt(f"checkpoint: {name}"), timeout=60)
    assert kind == "execution" and time.monotonic() - began < 60
    assert name in message or "is not one of the files in" in message, message
    assert not [w for w in LIBRARY_WORDS if w in message], message
    _answers_quickly(comfy)


@pytest.mark.parametrize("path, expected", [
    ("/tmp/evil\x00name.mp4", "NUL byte"),
    ("x" * 5000 + ".mp4", "longer than the file system allows"),
    ("/dev/zero", "MOTION_CORE_ALLOW_ANY_PATH=1"),
    ("{input}/stuck.mp4", "not a regular file"),
    ("/nonexistent/dance.mp4", "not found"),
    ("up/up/up/up/up/up/up/up/up/up/up/up/up/up/up/up/up/up/up/up/up/up/up/up/up/up/up/up/up/up/up/up/up/up/up/up/"
     "up/up/up/up/up/secret.mp4", "not found"),
], ids=["nul", "long", "dev_zero", "fifo_in_input", "missing", "deep_links"])
def test_hostile_typed_video_paths_are_clear_errors(comfy, world, path, expected):
    """`path` reaches only ComfyUI's folders unless the server's owner opens it (MOTION_CORE_ALLOW_ANY_PATH, issue
    38), so /dev/zero is refused as outside them; inside them, a FIFO is still named as not a regular file. What a
    hostile value gets is a clear error, promptly, and nothing written."""
    path = path.replace("{input}", str(comfy.input_dir))
    before = _snapshot(*_watched(comfy))
    began = time.monotonic()
    kind, message = _attempt(comfy, _video_prompt(path=path), timeout=60)
    assert kind == "execution" and expected in message, message
    assert time.monotonic() - began < 60 and len(message) < 2000
    assert not [w for w in LIBRARY_WORDS if w in message], message
    _answers_quickly(comfy)
    assert _snapshot(*_watched(comfy)) == before


def test_a_relative_typed_path_is_read_from_the_input_folder(comfy, world):
    """`path` = "hard_clip.mp4" names the clip in ComfyUI's input folder (what the user sees), not a file relative to
    the folder the server was started in; a name found nowhere says where it looked, input folder first."""
    assert _attempt(comfy, _video_prompt(path="hard_clip.mp4")) == ("success", "")
    kind, message = _attempt(comfy, _video_prompt(path="no_such_clip.mp4"))
    assert kind == "execution" and "not found" in message, message
    looked = message.split("looked at", 1)[1].lstrip(" '\"")
    assert looked.startswith(str(comfy.input_dir / "no_such_clip.mp4")), message


@pytest.mark.parametrize("prefix", [
    "../../escaped", "a/../../escaped", "x" * 5000, "up/escaped", "evil\x00name", "~root/escaped",
    "up/new_folder/escaped",
], ids=["dotdot", "nested_dotdot", "long", "link_out", "nul", "tilde", "link_out_new_folder"])
def test_hostile_save_prefixes_write_nothing_outside_motion_loras(comfy, world, prefix):
    outside = _snapshot(comfy.base_dir / "outside", comfy.models_dir / "checkpoints", comfy.input_dir)
    inside = _snapshot(comfy.models_dir / "motion_loras")
    kind, message = _attempt(comfy, _save_prompt(prefix))
    assert kind in ("validation", "execution"), f"{prefix[:40]!r} was saved"
    assert "filename_prefix" in message or "motion_loras" in message, message
    assert not [w for w in LIBRARY_WORDS if w in message], message
    assert _snapshot(comfy.base_dir / "outside", comfy.models_dir / "checkpoints", comfy.input_dir) == outside
    assert _snapshot(comfy.models_dir / "motion_loras") == inside
    _answers_quickly(comfy)


@pytest.mark.parametrize("resume_from", [
    "/nonexistent/checkpoint.pt", "../../secret.safetensors", "/dev/zero", "evil\x00.pt",
    "x" * 5000 + ".pt",
], ids=["missing", "dotdot", "dev_zero", "nul", "long"])
def test_hostile_resume_paths_are_clear_training_errors(comfy, world, resume_from):
    prompt = {"m": _model_prompt()["1"], "1": _video_prompt()["1"]}
    prompt["2"] = {"class_type": "MDTrainMotionLoRA", "inputs": {
        "video_model": ["m", 0], "clips": ["1", 2], "recipe": "naive", "steps": 1, "learning_rate": 0.0, "rank": 2,
        "width": 16, "height": 16, "frames": 8, "seed": 0, "checkpoint_every": 0, "validate_every": 0,
        "name": "hostile_resume", "resume_from": resume_from}}
    prompt["3"] = {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}}
    before = _snapshot(*_watched(comfy))
    kind, message = _attempt(comfy, prompt, timeout=120)
    assert kind == "execution", message
    assert not [w for w in LIBRARY_WORDS if w in message] and len(message) < 2000, message
    _answers_quickly(comfy)
    assert _snapshot(*_watched(comfy)) == before


def test_link_loops_in_listed_folders_do_not_stall_object_info(comfy, world):
    loops = [comfy.models_dir / "diffusers" / "loop", comfy.input_dir / "loop",
             comfy.models_dir / "diffusers" / "hard_tiny" / "back"]
    targets = [comfy.models_dir / "diffusers", comfy.input_dir, comfy.models_dir / "diffusers" / "hard_tiny"]
    try:
        for link, target in zip(loops, targets):
            os.symlink(target, link)
        began = time.monotonic()
        info = comfy.get("/object_info", timeout=OBJECT_INFO_S + 5).json()
        elapsed = time.monotonic() - began
        assert elapsed < OBJECT_INFO_S, f"/object_info took {elapsed:.1f} s with link loops"
        spec = info["MDLoadVideoModel"]["input"]["required"]["model"]
        options = spec[0] if isinstance(spec[0], list) else spec[1]["options"]
        assert options.count("diffusers: hard_tiny") == 1
        _answers_quickly(comfy)
    finally:
        for link in loops:
            if os.path.lexists(link):
                os.unlink(link)


def _rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_soak_of_mixed_prompts_keeps_the_server_bounded(comfy, world):
    """40 prompts, valid 2-step samples of the tiny model (each a new seed, so the sampler really runs) mixed with
    each class of invalid prompt above. The bound: RSS may grow at most RSS_GROWTH_MB after a warm-up of both kinds.
    Measured on CPU (ComfyUI 0.3.75, torch 2.14): 977 -> 978 MB, i.e. ~1 MB for 40 prompts. 100 MB leaves room for
    allocator arenas and ComfyUI's prompt history on other machines, while anything kept per prompt of 2.5 MB or
    more (a model copy, a decoded clip, an exception holding frames) crosses it within the 40 prompts."""
    invalid = [_model_prompt("diffusers: ../secret"), _lora_prompt("../secret.safetensors"),
               _video_prompt(video="up/secret.mp4"), _model_prompt("checkpoint: corrupt.safetensors"),
               _video_prompt(path="/dev/zero"), _save_prompt("../../escaped"),
               _model_prompt(f"checkpoint: {'y' * 3000}"), _model_prompt(motion_module="a\x00b")]
    for seed, bad in enumerate(invalid[:4]):  # warm-up: the model loaded, every code path imported once
        assert _attempt(comfy, _sample_prompt(1000 + seed))[0] == "success"
        assert _attempt(comfy, bad)[0] in ("validation", "execution")
    pid = comfy.process.pid
    start_rss = _rss_mb(pid)
    ids, expected = [], []
    for i in range(40):
        prompt = _sample_prompt(i) if i % 2 == 0 else invalid[(i // 2) % len(invalid)]
        resp = requests.post(f"{comfy.url}/prompt", json={"prompt": prompt, "client_id": "soak"}, timeout=60)
        if resp.status_code == 200:
            ids.append(resp.json()["prompt_id"])
            expected.append(i % 2 == 0)
        else:
            assert i % 2 == 1, resp.text  # only invalid prompts may be refused at validation
    statuses = [comfy.wait(pid_, timeout=300).status for pid_ in ids]
    assert statuses == ["success" if ok else "error" for ok in expected]
    _answers_quickly(comfy)
    end_rss = _rss_mb(pid)
    print(f"soak: RSS {start_rss:.0f} MB after warm-up, {end_rss:.0f} MB after 40 prompts")
    assert end_rss - start_rss < RSS_GROWTH_MB, (start_rss, end_rss)
    assert comfy.alive()
