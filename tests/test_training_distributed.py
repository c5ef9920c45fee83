"""``accelerate launch -m motion_core train`` on two CPU processes (gloo): the same LoRA as one process.

Two processes train a global batch split between them and sum the LoRA gradients; one process trains the same
global batch alone. The LoRAs they save must agree within 1e-5 relative (max |a - b| / max |b| per tensor), only
process 0 may print progress and write files, a cancel in either process stops both with one checkpoint, and a
resume in two processes continues to the uninterrupted single-process result.

With --shard-base the frozen base is split over the two processes (FSDP2). FSDP's backward hooks change the order
in which activation gradients are added, so gradients differ in their last bits and Adam magnifies that in the
elements whose gradient is near its eps; the sharded LoRA agrees with the unsharded one within 1e-5 of the file's
largest weight (max |a - b| over all tensors / max |b|; measured 3e-6), not tensor by tensor.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from video_samples import sample_frames, write_animated_image

from motion_core.__main__ import main
from motion_core.backbones import save_tiny_diffusers_folder

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-5
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
          "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "motion_core"]

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch built without gloo")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    model = save_tiny_diffusers_folder(folder / "model", "unet3d", seed=0)
    frames = sample_frames(6, 32, 32)
    videos = [write_animated_image(folder / "a.gif", frames, 8),
              write_animated_image(folder / "b.gif", frames[::-1].copy(), 8)]
    return model, videos


def _args(inputs, out, *, steps, batch, extra=()):
    model, videos = inputs
    args = ["train", "--model", str(model), "--caption", "a square moves", "--recipe", "motion_director",
            "--steps", str(steps), "--rank", "2", "--width", "16", "--height", "16", "--frames", "4",
            "--batch-size", str(batch), "--no-gradient-checkpointing", "--out", str(out), *extra]
    for video in videos:
        args += ["--video", str(video)]
    return args


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "WORLD_SIZE": "", "RANK": ""}


def _launch(args, timeout=240):
    done = subprocess.run([*LAUNCH, *args], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout,
                          check=False)
    return done.returncode, done.stdout, done.stderr


def _max_relative_difference(a: Path, b: Path) -> float:
    """The worst tensor's max |a - b| / max |b|."""
    x, y = load_file(a), load_file(b)
    assert x.keys() == y.keys() and x
    return max(float((x[k] - y[k]).abs().max() / y[k].abs().max().clamp_min(1e-30)) for k in x)


def _file_relative_difference(a: Path, b: Path) -> float:
    """max |a - b| over the whole file / max |b| over the whole file."""
    x, y = load_file(a), load_file(b)
    assert x.keys() == y.keys() and x
    worst = max(float((x[k] - y[k]).abs().max()) for k in x)
    return worst / max(float(y[k].abs().max()) for k in x)


@pytest.fixture(scope="module")
def one_process(inputs, tmp_path_factory):
    """A single-process run of 3 steps with a global batch of 4 (two clips)."""
    out = tmp_path_factory.mktemp("one") / "lora.safetensors"
    assert main(_args(inputs, out, steps=3, batch=4)) == 0
    return out


def test_two_processes_train_the_lora_one_process_trains_with_the_same_global_batch(inputs, one_process,
                                                                                    tmp_path):
    one, two = one_process, tmp_path / "two" / "lora.safetensors"
    code, out, err = _launch(_args(inputs, two, steps=3, batch=4))
    assert code == 0, err[-3000:]
    # Process 0 alone reports: a second process acting alone would print every step twice (and race on the file).
    assert "training in 2 processes (gloo, CPU): a global batch of 4 samples per step, 2, 2 per process" in out
    assert [out.count(f"step {s}/3 ") for s in (1, 2, 3)] == [1, 1, 1], out
    assert sorted(p.name for p in two.parent.iterdir()) == sorted(p.name for p in one.parent.iterdir()) == [
        "lora.safetensors", "lora_appearance_0.safetensors", "lora_appearance_1.safetensors"]
    for name in ("lora", "lora_appearance_0", "lora_appearance_1"):
        difference = _max_relative_difference(two.parent / f"{name}.safetensors", one.parent / f"{name}.safetensors")
        assert difference < TOLERANCE, (name, difference)
    # The batch really was split and summed: a run of half the batch learns something else.
    half = tmp_path / "half" / "lora.safetensors"
    assert main(_args(inputs, half, steps=3, batch=2)) == 0
    assert _max_relative_difference(half, one) > 1e-3


def test_a_base_sharded_over_two_processes_trains_the_unsharded_lora(inputs, one_process, tmp_path):
    sharded = tmp_path / "lora.safetensors"
    code, out, err = _launch(_args(inputs, sharded, steps=3, batch=4, extra=["--shard-base"]))
    assert code == 0, err[-3000:]
    assert out.count("step 3/3 ") == 1
    # one_process equals an unsharded two-process run bit for bit (the test above); compare with it.
    for name in ("lora", "lora_appearance_0", "lora_appearance_1"):
        difference = _file_relative_difference(tmp_path / f"{name}.safetensors", one_process.parent /
                                               f"{name}.safetensors")
        assert difference < TOLERANCE, (name, difference)


def test_shard_base_needs_several_processes(inputs, tmp_path, capsys):
    assert main(_args(inputs, tmp_path / "x.safetensors", steps=1, batch=1, extra=["--shard-base"])) == 2
    assert "--shard-base splits the base model over several processes" in capsys.readouterr().err


def test_a_global_batch_smaller_than_the_processes_is_refused(inputs, tmp_path):
    code, _, err = _launch(_args(inputs, tmp_path / "x.safetensors", steps=2, batch=1))
    assert code != 0 and not (tmp_path / "x.safetensors").exists()
    assert err.count("error: batch_size is the global batch, dealt out over the 2 processes") == 1, err[-3000:]


def _workers(launcher: int) -> dict[int, int]:
    """{rank: pid} of the launcher's descendant processes that carry a RANK."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = {}, [launcher]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            todo.append(child)
            try:
                environ = (Path("/proc") / str(child) / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            rank = [v.split(b"=", 1)[1] for v in environ if v.startswith(b"RANK=")]
            if rank and rank[0].isdigit():
                found[int(rank[0])] = child
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc to find the worker processes")
def test_cancel_in_one_process_stops_both_and_a_two_process_resume_ends_where_one_process_does(inputs, tmp_path):
    steps, checkpoints = 12, tmp_path / "ckpt"
    cancelled = tmp_path / "cancelled.safetensors"
    launcher = subprocess.Popen([*LAUNCH, *_args(inputs, cancelled, steps=steps, batch=2,
                                                 extra=["--checkpoint-dir", str(checkpoints)])],
                                cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in launcher.stdout:
            lines.append(line)
            if line.startswith("step 1/"):
                break
        workers = _workers(launcher.pid)
        assert sorted(workers) == [0, 1], (workers, lines)
        os.kill(workers[1], signal.SIGINT)  # Ctrl-C reaches only the second process
        out, err = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    out = "".join(lines) + out
    assert launcher.returncode != 0
    assert err.count("error: Training cancelled after") == 1, err[-3000:]
    saved = list(checkpoints.iterdir())
    assert len(saved) == 1 and saved[0].name.startswith("checkpoint-step"), saved
    assert f"checkpoint: {saved[0]}" in out and str(saved[0]) in err
    stopped_at = int(saved[0].name[len("checkpoint-step"):-3])
    assert 1 <= stopped_at < steps and f"step {stopped_at + 1}/" not in out
    assert not cancelled.exists()

    resumed = tmp_path / "resumed.safetensors"
    code, out, err = _launch(_args(inputs, resumed, steps=steps, batch=2, extra=["--resume", str(saved[0])]))
    assert code == 0, err[-3000:]
    assert f"step {stopped_at}/" not in out and out.count(f"step {steps}/{steps} ") == 1
    reference = tmp_path / "reference.safetensors"
    assert main(_args(inputs, reference, steps=steps, batch=2)) == 0
    assert _max_relative_difference(resumed, reference) < TOLERANCE
