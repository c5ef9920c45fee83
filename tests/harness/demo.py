"""`make demo` / `make demo-wan`: start the provisioned ComfyUI headless with this pack and run a built-in demo.

`make demo` runs ShapesT2V (UNet3D), `make demo-wan` ShapesWan (the real Wan classes), `--model all` both. The
bundled reference clip (a red square moving in a circle, a motion neither base model ever saw) is copied into
ComfyUI's input folder; the workflow trains a MotionDirector LoRA on it (ShapesT2V 400 steps at lr 1e-3, ShapesWan
800 at 2e-3, both biased to high noise), printing step, loss, elapsed and time left, and samples "a green triangle
moves in a circle" from fresh noise, no noise prior. The videos land in demo-output/ (ShapesWan's under
demo-output/shapes_wan/), and the demo prints what the world's metrics measure on them, next to the base model's
sample of the same prompt and seed without the LoRA, then the same over six seeds with the saved LoRA file.

Fidelity (issue #22): the primary figure is `reference_fidelity`, each sample's tracked path against the bundled
reference clip's OWN tracked path, printed next to the base model's and the chance level of random paths of other
families. The family score (best over 48 circle members of any phase and speed) is printed only as a secondary
figure: random wobble scores ~0.2 on it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from motion_core.toy.metrics import family_fidelity, random_path_chance, reference_fidelity
from motion_core.toy.tracking import track_object
from motion_core.video import load_reference_video
from tests.harness.comfy_server import ComfyServer
from tests.harness.progress_watch import TrainingProgress
from tests.harness.provision import REPO_ROOT
from tests.harness.workflow_api import to_api_prompt

TOY = REPO_ROOT / "motion_core" / "toy"
OUTPUT_DIR = REPO_ROOT / "demo-output"
MOTION, COLOUR, SHAPE = "circle", "green", "triangle"
SWEEP_SEEDS = range(6)  # one sample can land either side by luck; six seeds of each show what the LoRA does


@dataclass(frozen=True)
class Demo:
    """One built-in model's demo: its workflow, the clip it trains on and where its files go."""

    name: str  # also the LoRA and video subfolder the workflow saves into
    model_dir: Path
    workflow: Path
    reference: Path
    frames: int
    pretrain: str  # the command that rebuilds the model
    out: str  # subfolder of demo-output ("" = demo-output itself)


DEMOS = (
    Demo("shapes_t2v", TOY / "shapes_t2v", REPO_ROOT / "workflows" / "shapes_t2v_demo.json",
         TOY / "assets" / "shapes_circle_reference.gif", 8, "python -m motion_core.toy.pretrain", ""),
    Demo("shapes_wan", TOY / "shapes_wan", REPO_ROOT / "workflows" / "shapes_wan_demo.json",
         TOY / "assets" / "shapes_circle_reference_9f.gif", 9, "python -m motion_core.toy.pretrain.wan", "shapes_wan"),
)


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


def reference_track(demo: Demo = DEMOS[0]):
    """The bundled reference clip's own tracked path, loaded as the demo workflow loads it (64x64)."""
    return track_object(load_reference_video(demo.reference, frame_cap=demo.frames, width=64, height=64).frames)


def _measure(path, reference) -> str:
    track = track_object(load_reference_video(path).frames)
    return (f"fidelity to the reference clip's path {reference_fidelity(track, reference):.2f} "
            f"(family '{MOTION}', secondary: {family_fidelity(track, MOTION):.2f}); object seen as "
            f"{track.colour or '-'} {track.shape or '-'} (prompt: {COLOUR} {SHAPE})")


def _base_prompt(lora_prompt: dict, demo: Demo) -> dict:
    """The same sampler settings without the LoRA stack: what the base model makes of the prompt from the same
    starting noise, so the difference between the two videos is the LoRA's."""
    copy = json.loads(json.dumps(lora_prompt))  # the caller's prompt keeps its LoRA stack
    keep = {k: v for k, v in copy.items() if v["class_type"] in ("MDLoadVideoModel", "MDLoadReferenceVideo",
                                                                 "MDSampleVideo", "CreateVideo", "SaveVideo")}
    for node in keep.values():
        node["inputs"].pop("lora_stack", None)
        if node["class_type"] == "SaveVideo":
            node["inputs"]["filename_prefix"] = f"{demo.name}/base_model"
    return keep


def _saved_lora(server, demo: Demo) -> str:
    """The LoRA file the workflow's Save node just wrote (the newest circle_*.safetensors), as Load Motion LoRA
    names it."""
    folder = server.models_dir / "motion_loras" / demo.name
    newest = max(folder.glob("circle_*.safetensors"), key=lambda f: f.stat().st_mtime)
    return f"{demo.name}/{newest.name}"


def _sweep_prompt(lora_prompt: dict, demo: Demo, seed: int, lora_file: str | None) -> dict:
    """The demo's sampler at another seed, with the saved LoRA loaded from its file (no retraining) or without it."""
    prompt = _base_prompt(lora_prompt, demo)
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
            node["inputs"]["filename_prefix"] = f"{demo.name}/sweep_{'lora' if lora_file else 'base'}_{seed}"
    return prompt


def _sweep(server, prompt: dict, demo: Demo, reference) -> dict[str, list[float]]:
    lora_file, scores = _saved_lora(server, demo), {"lora": [], "base": []}
    for seed in SWEEP_SEEDS:
        for key, lora in (("lora", lora_file), ("base", None)):
            result = server.run(_sweep_prompt(prompt, demo, seed, lora), timeout=600)
            path = _fetch(server, result, str(Path(demo.out, "sweep", f"{key}_seed{seed}.mp4")))
            scores[key].append(reference_fidelity(track_object(load_reference_video(path).frames), reference))
    return scores


def run_demo(server, demo: Demo, started: float) -> None:
    shutil.copy(demo.reference, server.input_dir / demo.reference.name)
    prompt = to_api_prompt(json.loads(demo.workflow.read_text()), server.object_info())
    print(f"[{demo.name}] Training a MotionDirector LoRA on the reference clip, then sampling (a few minutes on a "
          "CPU)...", flush=True)
    with TrainingProgress(server.url, f"[{demo.name}]"):
        result = server.run(prompt, timeout=1800)
    with_lora = _fetch(server, result, str(Path(demo.out, "green_triangle_circle.mp4")))
    base = _fetch(server, server.run(_base_prompt(prompt, demo), timeout=600),
                  str(Path(demo.out, "base_model_no_lora.mp4")))
    print(f"[{demo.name}] Wrote {with_lora.relative_to(REPO_ROOT)} at {time.monotonic() - started:.0f}s; sampling "
          f"seeds {SWEEP_SEEDS.start}-{SWEEP_SEEDS.stop - 1} with and without the saved LoRA...", flush=True)
    reference = reference_track(demo)
    sweep = _sweep(server, prompt, demo, reference)
    print(f"[{demo.name}] with the motion LoRA: {_measure(with_lora, reference)}")
    print(f"[{demo.name}] base model, no LoRA:  {_measure(base, reference)}   ({base.relative_to(REPO_ROOT)})")
    print(f"[{demo.name}] chance level: random paths of other families score "
          f"{random_path_chance(reference, MOTION):.2f} against the reference clip's path (the reference itself: 1.00)")
    for key, label in (("lora", "with the motion LoRA"), ("base", "base model, no LoRA ")):
        values = sweep[key]
        print(f"[{demo.name}] seeds {SWEEP_SEEDS.start}-{SWEEP_SEEDS.stop - 1}, {label}: mean fidelity "
              f"{sum(values) / len(values):.2f} ({' '.join(f'{v:.2f}' for v in values)})   "
              f"({Path('demo-output', demo.out, 'sweep')}/)", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=[*(d.name for d in DEMOS), "all"], default=DEMOS[0].name,
                        help="which built-in model's demo to run (default: %(default)s)")
    chosen = [d for d in DEMOS if parser.parse_args(argv).model in (d.name, "all")]
    for demo in chosen:
        if not (demo.model_dir / "model_index.json").exists():
            raise SystemExit(f"The built-in model {demo.model_dir.name} is missing ({demo.model_dir}); restore it "
                             f"with `git checkout -- {demo.model_dir.relative_to(REPO_ROOT)}` or rebuild it with "
                             f"`{demo.pretrain}`.")
    started = time.monotonic()
    with ComfyServer() as server:
        print(f"ComfyUI is up at {server.url} (log: {server.log_path})", flush=True)
        for demo in chosen:
            run_demo(server, demo, started)
    print(f"Done in {time.monotonic() - started:.0f}s.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
