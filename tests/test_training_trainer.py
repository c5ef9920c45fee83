"""The shared trainer: resume equals an uninterrupted run, cancel checkpoints first, NaN stops with a clear error,
callbacks fire, bad configs are refused, and the model and global RNG come back untouched."""

import math

import pytest
import torch
from test_recipe_support import base_snapshot, clipset, wave_clip

from motion_core.backbones import tiny_unet3d_backbone
from motion_core.errors import CancelledError, InvalidInputError, TrainingError
from motion_core.training import TrainingCallbacks, TrainingConfig, load_checkpoint, plot_loss, train_motion_lora
from motion_core.training.optim import lr_factor
from motion_core.recipes import Stage

FAST = dict(rank=2, width=16, height=16, frames=4, gradient_checkpointing=False)


@pytest.fixture(scope="module")
def backbone():
    return tiny_unet3d_backbone(1)


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(backbone, tmp_path):
    config = TrainingConfig(steps=4, lr=1e-2, seed=3, checkpoint_dir=str(tmp_path / "a"), **FAST)
    full = train_motion_lora(backbone, clipset(), "motion_director", config)
    stop = TrainingConfig(steps=4, lr=1e-2, seed=3, checkpoint_dir=str(tmp_path / "b"), **FAST)
    calls = []
    cancel = TrainingCallbacks(should_cancel=lambda: len(calls) == 2, on_progress=calls.append)
    with pytest.raises(CancelledError, match="after 2 of 4 steps") as err:
        train_motion_lora(backbone, clipset(), "motion_director", stop, cancel)
    checkpoint = tmp_path / "b" / "checkpoint-step000002.pt"
    assert str(checkpoint) in str(err.value) and load_checkpoint(checkpoint)["step"] == 2
    resumed = train_motion_lora(backbone, clipset(), "motion_director", stop, resume_from=checkpoint)
    for a, b in [(full.motion_lora, resumed.motion_lora), (full.appearance_loras[0], resumed.appearance_loras[0])]:
        assert a.tensors.keys() == b.tensors.keys()
        assert all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)
    assert [h["total"] for h in full.history] == [h["total"] for h in resumed.history]


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(backbone, tmp_path, monkeypatch):
    from motion_core.recipes import naive

    real_mse = naive.losses.mse
    calls = []

    def poisoned(pred, target):
        calls.append(1)
        return real_mse(pred, target) * (float("nan") if len(calls) == 3 else 1.0)

    monkeypatch.setattr(naive.losses, "mse", poisoned)
    config = TrainingConfig(steps=5, lr=1e-3, checkpoint_every=2, checkpoint_dir=str(tmp_path), **FAST)
    with pytest.raises(TrainingError, match=r"step 3.*Lower the learning rate.*checkpoint-step000002") as err:
        train_motion_lora(backbone, clipset(), "naive", config)
    assert "nan" in str(err.value).lower()
    assert load_checkpoint(tmp_path / "checkpoint-step000002.pt")["step"] == 2


def test_callbacks_report_progress_checkpoints_and_validation_with_only_the_motion_lora(backbone, tmp_path):
    progress, saved, validated = [], [], []

    def preview(step, bb):
        active = [n for n, s in bb.denoiser.__dict__["_motion_core_adapters"].items() if s.enabled]
        validated.append((step, active, bb.denoiser.training, torch.is_grad_enabled()))
        torch.rand(3)  # a preview may draw random numbers: the run must not notice

    callbacks = TrainingCallbacks(on_progress=progress.append, on_checkpoint=saved.append, on_validation=preview)
    config = TrainingConfig(steps=4, lr=1e-3, checkpoint_every=2, validate_every=2, checkpoint_dir=str(tmp_path),
                            **FAST)
    result = train_motion_lora(backbone, clipset(), "vmc", config, callbacks)
    assert [p.step for p in progress] == [1, 2, 3, 4] and progress[-1].eta_s == 0
    assert all(p.total_steps == 4 and "motion" in p.losses and p.it_per_s > 0 for p in progress)
    assert [s.name for s in saved] == ["checkpoint-step000002.pt", "checkpoint-step000004.pt"]
    assert not saved[0].exists() and result.checkpoint == saved[-1]
    assert validated == [(2, ["train_temporal"], False, False), (4, ["train_temporal"], False, False)]
    plain = train_motion_lora(backbone, clipset(), "vmc", TrainingConfig(steps=4, lr=1e-3, **FAST))
    assert all(torch.equal(v, plain.motion_lora.tensors[k]) for k, v in result.motion_lora.tensors.items())


def test_the_model_and_the_callers_rng_come_back_untouched(backbone):
    before = base_snapshot(backbone.denoiser)
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    train_motion_lora(backbone, clipset(), "naive", TrainingConfig(steps=1, lr=1e-3, **FAST))
    assert torch.equal(torch.rand(4), expected)
    after = base_snapshot(backbone.denoiser)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert not backbone.denoiser.__dict__.get("_motion_core_adapters")


@pytest.mark.parametrize("overrides, message", [
    (dict(steps=0), "steps must be at least 1"),
    (dict(frames=9), "has 4 frames but training uses 9"),
    (dict(width=20), "multiple of 8"),
    (dict(lr=-1.0), "lr must be positive"),
    (dict(lr_schedule="linear"), "lr_schedule"),
])
def test_bad_configs_are_refused_with_the_fix(backbone, overrides, message):
    config = TrainingConfig(**{**FAST, "steps": 2, **overrides})
    with pytest.raises(InvalidInputError, match=message):
        train_motion_lora(backbone, clipset(), "naive", config)


def test_regularisation_clips_only_for_newmove(backbone):
    with pytest.raises(InvalidInputError, match="newmove"):
        train_motion_lora(backbone, clipset(), "vmc", TrainingConfig(steps=1, **FAST),
                          regularisation_clips=clipset(wave_clip(caption="a person walks")))


def test_newmove_trains_on_regularisation_clips_with_their_own_captions(backbone):
    result = train_motion_lora(backbone, clipset(), "newmove", TrainingConfig(steps=6, lr=1e-3, seed=1, **FAST),
                               regularisation_clips=clipset(wave_clip(caption="a person walks", phase=1.0)))
    kinds = {k for h in result.history for k in h if k.endswith("mse")}
    assert kinds == {"mse", "regularisation_mse"}
    assert result.motion_lora.trigger == "V*" and result.motion_lora.caption.endswith("V*")


def test_cosine_schedule_warms_up_and_restarts_in_each_stage():
    stages = [Stage("a", 10), Stage("b", 10)]
    assert lr_factor(0, stages, "constant", 2) == pytest.approx(1 / 3)
    assert lr_factor(2, stages, "cosine", 2) == pytest.approx(1.0)
    assert lr_factor(9, stages, "cosine", 2) < 0.1
    assert lr_factor(10, stages, "cosine", 2) == pytest.approx(1 / 3)


def test_loss_plot_is_an_rgb_uint8_image():
    history = [{"step": i + 1, "stage": "main", "lr": 1e-3, "total": 1.0 / (i + 1), "mse": math.nan}
               for i in range(20)]
    image = plot_loss(history)
    assert image.dtype == torch.uint8 and image.shape == (360, 640, 3)
    assert (image != 255).any() and plot_loss([]).shape == (360, 640, 3)
