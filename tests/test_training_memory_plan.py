"""The memory plan: predicted peaks from the architecture, auto's choice, the refusal, the CLI's --plan."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from motion_core.backbones import tiny_unet3d_backbone, tiny_wan_backbone
from motion_core.clips import Clip, ClipSet
from motion_core.recipes import get_recipe
from motion_core.training import MemoryPlanError, TrainingConfig, plan_run, train_motion_lora
from motion_core.training.auto_memory import candidates, choose, free_bytes
from motion_core.training.memory_plan import MIB, MemorySettings, Predictor, WeightFacts


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _predictor(backbone, frames=5, size=16, device="cpu", recipe="naive"):
    return Predictor(backbone, get_recipe(recipe), frames=frames, width=size, height=size, rank=4, alpha=4.0,
                     dropout=0.0, device=torch.device(device))


def _clip(frames=5, size=16):
    g = torch.Generator().manual_seed(0)
    return Clip(torch.randint(0, 256, (frames, size, size, 3), dtype=torch.uint8, generator=g), 8.0, "a ball")


def test_weights_are_counted_exactly_by_dtype_and_fp8_halves_the_linear_weights_of_a_bf16_model():
    backbone = tiny_wan_backbone(0, dtype=torch.bfloat16)
    facts = WeightFacts.of(backbone)
    expected = sum(t.numel() * t.element_size() for t in [*backbone.denoiser.parameters(),
                                                          *backbone.denoiser.buffers()])
    assert facts.total == expected and sum(facts.by_dtype.values()) == expected
    assert len(facts.block_bytes) == len(backbone.denoiser.blocks) and all(b > 0 for b in facts.block_bytes)
    assert all(f < b for f, b in zip(facts.block_fp8_bytes, facts.block_bytes))
    assert facts.fp8_original_bytes == 2 * facts.fp8_saving_elements  # bf16 -> one byte each


def test_checkpointing_lowers_the_predicted_activations_and_they_grow_with_the_clip():
    predictor = _predictor(tiny_unet3d_backbone(0), frames=8, size=32)
    off, on = (predictor.plan(MemorySettings(c)) for c in (False, True))
    assert on.parts["activations"] < off.parts["activations"]
    assert on.parts["weights"] == off.parts["weights"] and off.device_peak == off.host_peak  # one memory on a CPU
    longer = _predictor(tiny_unet3d_backbone(0), frames=16, size=32).plan(MemorySettings(False))
    assert longer.tokens == 2 * off.tokens and longer.parts["activations"] > 1.5 * off.parts["activations"]
    assert "gradient checkpointing off" in off.summary() and "predicted peak" in off.summary()


def test_the_real_wan_1_3b_and_zeroscope_architectures_plan_on_the_meta_device_without_weights():
    from motion_core.bench.memory import build_backbone

    wan = build_backbone("wan2.1_t2v_1.3b", blocks=None, device="meta")
    plan = _predictor(wan, frames=81, size=480, device="cuda").plan(MemorySettings(True))
    # 1.42B parameters in bf16 (the real model's 2.8 GB) and 30 offloadable blocks; 21 x 30 x 30 tokens.
    assert 2.6e9 < plan.parts["weights"] < 3.0e9 and plan.blocks == 30 and plan.tokens == 21 * 30 * 30
    offloaded = _predictor(wan, frames=81, size=480, device="cuda").plan(MemorySettings(True, "fp8", 30))
    assert offloaded.device_peak < plan.device_peak and offloaded.host_peak > plan.host_peak
    zeroscope = build_backbone("zeroscope", blocks=None, device="meta")
    z = _predictor(zeroscope, frames=8, size=64).plan(MemorySettings(True))
    assert 2.6e9 < z.parts["weights"] < 3.0e9 and z.tokens == 8 * 8 * 8


def test_auto_picks_no_checkpointing_when_plenty_is_free_and_checkpointing_when_little_is():
    predictor = _predictor(tiny_unet3d_backbone(0), frames=8, size=32)
    off, on = (predictor.plan(MemorySettings(c)) for c in (False, True))
    assert choose(predictor, available=10 * 2**30).settings == MemorySettings(False)
    between = (on.needed + off.needed) // 2
    tight = choose(predictor, available=between)
    assert tight.settings == MemorySettings(True) and tight.fits
    assert tight.considered and "checkpointing off" in tight.considered[0]


def test_on_a_gpu_auto_adds_fp8_then_offloads_the_fewest_blocks_that_fit():
    predictor = _predictor(tiny_wan_backbone(0, dtype=torch.bfloat16), device="cuda")
    blocks = predictor.blocks
    order = candidates(predictor, {})
    assert order[:3] == [MemorySettings(False), MemorySettings(True), MemorySettings(True, "fp8")]
    assert order[3:] == [MemorySettings(True, "fp8", k) for k in range(1, blocks + 1)]
    fp8 = predictor.plan(MemorySettings(True, "fp8"))
    one = predictor.plan(MemorySettings(True, "fp8", 1))
    assert one.device_peak < fp8.device_peak
    assert choose(predictor, available=one.needed).settings == MemorySettings(True, "fp8", 1)
    # what the user set is kept: fp8 asked for, checkpointing off asked for
    assert all(c.base_storage == "fp8" for c in candidates(predictor, {"base_storage": "fp8"}))
    assert candidates(predictor, {"gradient_checkpointing": False}) == [MemorySettings(False)]


def test_the_refusal_says_what_is_needed_what_is_free_and_what_would_fit():
    predictor = _predictor(tiny_unet3d_backbone(0), frames=16, size=64)
    smallest = predictor.plan(MemorySettings(True))
    free = smallest.needed - smallest.parts["activations"] // 2
    with pytest.raises(MemoryPlanError) as caught:
        choose(predictor, available=free)
    message = str(caught.value)
    assert "needs about" in message and "is free" in message and "What would fit:" in message
    assert " frames at 64x64" in message and "x" in message.split("or")[1]
    with pytest.raises(MemoryPlanError, match="smaller model"):
        choose(predictor, available=smallest.parts["weights"] // 2)


def test_training_in_auto_mode_runs_without_checkpointing_and_refuses_before_training_when_nothing_fits():
    backbone = tiny_wan_backbone(0)
    checkpointed = []
    original = type(backbone).enable_gradient_checkpointing
    type(backbone).enable_gradient_checkpointing = lambda self: (checkpointed.append(1), original(self))[1]
    try:
        result = train_motion_lora(backbone, ClipSet((_clip(),)), "naive",
                                   TrainingConfig(steps=1, width=16, height=16, frames=5, rank=2))
        assert result.memory_plan.settings == MemorySettings(False) and not checkpointed
        manual = train_motion_lora(backbone, ClipSet((_clip(),)), "naive",
                                   TrainingConfig(steps=1, width=16, height=16, frames=5, rank=2,
                                                  gradient_checkpointing=True))
        assert manual.memory_plan.settings.gradient_checkpointing and checkpointed
    finally:
        type(backbone).enable_gradient_checkpointing = original
    recipe = get_recipe("naive")
    config = TrainingConfig(steps=1, width=16, height=16, frames=5, rank=2)
    with pytest.raises(MemoryPlanError, match="is free"):
        plan_run(backbone, recipe, config, config.resolve(recipe.config), "cpu", available=1 * MIB)


def test_planning_draws_nothing_from_the_runs_random_streams():
    """A seeded run must train the same LoRA whether or not a plan is made first (the demo's figures depend on it)."""
    backbone = tiny_unet3d_backbone(0)
    recipe = get_recipe("motion_director")
    config = TrainingConfig(steps=1, width=16, height=16, frames=4, rank=2)
    torch.manual_seed(123)
    before = torch.get_rng_state()
    plan_run(backbone, recipe, config, config.resolve(recipe.config), "cpu")
    assert torch.equal(torch.get_rng_state(), before)
    auto = train_motion_lora(backbone, ClipSet((_clip(),)), "motion_director", config)
    manual = train_motion_lora(backbone, ClipSet((_clip(),)), "motion_director",
                               TrainingConfig(steps=1, width=16, height=16, frames=4, rank=2, memory="manual"))
    for key, tensor in auto.motion_lora.tensors.items():
        assert torch.equal(tensor, manual.motion_lora.tensors[key]), key


def test_free_memory_is_read_on_the_cpu():
    free = free_bytes("cpu")
    assert free is None or free > 0


def test_train_plan_prints_the_plan_and_exits_without_training(tmp_path, capsys):
    from video_samples import sample_frames, write_animated_image

    from motion_core.__main__ import main
    from motion_core.backbones.wan.tiny import save_tiny_wan_diffusers_folder

    model = save_tiny_wan_diffusers_folder(tmp_path / "wan", seed=0)
    video = write_animated_image(tmp_path / "clip.gif", sample_frames(5, 16, 16), 8)
    out = tmp_path / "pan.safetensors"
    code = main(["train", "--model", str(model), "--video", str(video), "--caption", "a pan", "--steps", "1",
                 "--rank", "2", "--width", "16", "--height", "16", "--frames", "5", "--plan", "--out", str(out)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "Memory plan (auto, before loading" in printed.out and "gradient checkpointing off" in printed.out
    assert not out.exists() and "step 1" not in printed.out


def test_predicted_peak_is_close_to_the_measured_one_on_a_tiny_model_in_a_fresh_process():
    """A small version of ``bench memory``: the real trainer pieces, one step, RSS in a subprocess."""
    from motion_core.bench import memory as bench

    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS="1")
    code = ("import json, torch; from motion_core.bench.memory import _child;"
            "_child('wan2.1_t2v_1.3b', 5, 64, 64, 1, 'naive', 8, False)")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 0, done.stderr[-2000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])["bytes"]
    predicted = bench.predictor("wan2.1_t2v_1.3b", 5, 64, 64, blocks=1, recipe="naive", rank=8).plan(
        MemorySettings(False)).device_peak
    assert abs(predicted - measured) / measured < 0.25, (predicted / MIB, measured / MIB)
