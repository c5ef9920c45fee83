"""`make demo`: start the provisioned ComfyUI headless with this pack and run the ShapesT2V demo workflow.

The bundled reference clip (a red square moving in a circle, a motion the base model never saw) is copied into
ComfyUI's input folder; the workflow trains a MotionDirector LoRA on it (400 steps at lr 1e-3, training biased to
high noise) and samples "a green triangle moves in a circle" from fresh noise, no noise prior. The video lands in
demo-output/, and the demo prints what the ShapesT2V metrics measure on it, next to the base model's sample of the
same prompt and seed without the LoRA.

Fidelity (issue #22): the primary figure is `reference_fidelity`, each sample's tracked path against the bundled
reference clip's OWN tracked path, printed next to the base model's and the chance level of random paths of other
families. The family score (best over 48 circle members of any phase and speed) is printed only as a secondary
figure: random wobble scores ~0.2 on it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

from motion_core.toy.metrics import family_fidelity, random_path_chance, reference_fidelity
from motion_core.toy.tracking import track_object
from motion_core.video import load_reference_video
from tests.harness.comfy_server import ComfyServer
from tests.harness.provision import REPO_ROOT
from tests.harness.workflow_api import to_api_prompt

WORKFLOW = REPO_ROOT / "workflows" / "shapes_t2v_demo.json"
SHAPES_T2V = REPO_ROOT / "motion_core" / "toy" / "shapes_t2v"
REFERENCE = REPO_ROOT / "motion_core" / "toy" / "assets" / "shapes_circle_reference.gif"
OUTPUT_DIR = REPO_ROOT / "demo-output"
MOTION, COLOUR, SHAPE = "circle", "green", "triangle"
SWEEP_SEEDS = range(6)  # one sample can land either side by luck; six seeds of each show what the LoRA does


def _fetch(server, result, name: str):
    if result.status != "success":
        raise SystemExit(f"The demo workflow failed: {result.error_text}")
    files = result.videos
    if not files:
        raise SystemExit(f"The demo workflow wrote no video: {result.outputs}")
    target = OUTPUT_DIR / name
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(server.fetch_output(files[0]))
    os.replace(partial, target)
    return target


def reference_track():
    """The bundled reference clip's own tracked path, loaded as the demo workflow loads it (8 frames, 64x64)."""
    return track_object(load_reference_video(REFERENCE, frame_cap=8, width=64, height=64).frames)


def _measure(path, reference) -> str:
    track = track_object(load_reference_video(path).frames)
    return (f"fidelity to the reference clip's path {reference_fidelity(track, reference):.2f} "
            f"(family '{MOTION}', secondary: {family_fidelity(track, MOTION):.2f}); object seen as "
            f"{track.colour or '-'} {track.shape or '-'} (prompt: {COLOUR} {SHAPE})")


def _base_prompt(lora_prompt: dict) -> dict:
    """The same sampler settings without the LoRA stack: what the base model makes of the prompt from the same
    starting noise, so the difference between the two videos is the LoRA's."""
    copy = json.loads(json.dumps(lora_prompt))  # the caller's prompt keeps its LoRA stack
    keep = {k: v for k, v in copy.items() if v["class_type"] in ("MDLoadVideoModel", "MDLoadReferenceVideo",
                                                                 "MDSampleVideo", "CreateVideo", "SaveVideo")}
    for node in keep.values():
        node["inputs"].pop("lora_stack", None)
        if node["class_type"] == "SaveVideo":
            node["inputs"]["filename_prefix"] = "shapes_t2v/base_model"
    return keep


def _saved_lora(server) -> str:
    """The LoRA file the workflow's Save node just wrote (the newest circle_*.safetensors), as Load Motion LoRA
    names it."""
    folder = server.models_dir / "motion_loras" / "shapes_t2v"
    newest = max(folder.glob("circle_*.safetensors"), key=lambda f: f.stat().st_mtime)
    return f"shapes_t2v/{newest.name}"


def _sweep_prompt(lora_prompt: dict, seed: int, lora_file: str | None) -> dict:
    """The demo's sampler at another seed, with the saved LoRA loaded from its file (no retraining) or without it."""
    prompt = _base_prompt(lora_prompt)
    for node_id, node in lora_prompt.items():
        if node["class_type"] == "MDLoadMotionLoRA" and lora_file is not None:
            inputs = {k: v for k, v in node["inputs"].items() if k != "trained_lora"}
            prompt[node_id] = {"class_type": "MDLoadMotionLoRA", "inputs": {**inputs, "lora_name": lora_file}}
    for node_id, node in prompt.items():
        if node["class_type"] == "MDSampleVideo":
            node["inputs"]["seed"] = seed
            if lora_file is not None:
                node["inputs"]["lora_stack"] = lora_prompt[node_id]["inputs"]["lora_stack"]
        if node["class_type"] == "SaveVideo":
            node["inputs"]["filename_prefix"] = f"shapes_t2v/sweep_{'lora' if lora_file else 'base'}_{seed}"
    return prompt


def _sweep(server, prompt: dict, reference) -> dict[str, list[float]]:
    lora_file, scores = _saved_lora(server), {"lora": [], "base": []}
    for seed in SWEEP_SEEDS:
        for key, lora in (("lora", lora_file), ("base", None)):
            result = server.run(_sweep_prompt(prompt, seed, lora), timeout=600)
            path = _fetch(server, result, f"sweep/{key}_seed{seed}.mp4")
            scores[key].append(reference_fidelity(track_object(load_reference_video(path).frames), reference))
    return scores


def main() -> int:
    if not (SHAPES_T2V / "model_index.json").exists():
        raise SystemExit(f"The built-in ShapesT2V model is missing ({SHAPES_T2V}); restore it with `git checkout -- "
                         f"{SHAPES_T2V.relative_to(REPO_ROOT)}` or rebuild it with `python -m motion_core.toy.pretrain`.")
    started = time.monotonic()
    with ComfyServer() as server:
        print(f"ComfyUI is up at {server.url} (log: {server.log_path})", flush=True)
        shutil.copy(REFERENCE, server.input_dir / REFERENCE.name)
        prompt = to_api_prompt(json.loads(WORKFLOW.read_text()), server.object_info())
        print("Training a MotionDirector LoRA on the reference clip (400 steps), then sampling (about five minutes "
              "on a CPU)...",
              flush=True)
        with_lora = _fetch(server, server.run(prompt, timeout=1800), "green_triangle_circle.mp4")
        base = _fetch(server, server.run(_base_prompt(prompt), timeout=600), "base_model_no_lora.mp4")
        print(f"Wrote {with_lora.relative_to(REPO_ROOT)} in {time.monotonic() - started:.0f}s; sampling seeds "
              f"{SWEEP_SEEDS.start}-{SWEEP_SEEDS.stop - 1} with and without the saved LoRA...", flush=True)
        reference = reference_track()
        sweep = _sweep(server, prompt, reference)
    print(f"  with the motion LoRA: {_measure(with_lora, reference)}")
    print(f"  base model, no LoRA:  {_measure(base, reference)}   ({base.relative_to(REPO_ROOT)})")
    print(f"  chance level: random paths of other families score {random_path_chance(reference, MOTION):.2f} "
          f"against the reference clip's path (the reference itself: 1.00)")
    for key, label in (("lora", "with the motion LoRA"), ("base", "base model, no LoRA ")):
        values = sweep[key]
        print(f"  seeds {SWEEP_SEEDS.start}-{SWEEP_SEEDS.stop - 1}, {label}: mean fidelity "
              f"{sum(values) / len(values):.2f} ({' '.join(f'{v:.2f}' for v in values)})   (demo-output/sweep/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
