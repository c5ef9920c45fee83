"""Issue 38, unit tier: NaN/inf numbers, LoRAs of another model size on a native MODEL, frame rates checked before
sampling, devices that are not there, and a sampled video kept when the disk is full (typed and resume paths:
tests/test_hardening_typed_paths.py). The server side is tests/test_e2e_hardening_round3.py."""

import errno
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from motion_core.__main__ import main
from motion_core.backbones import save_tiny_diffusers_folder, tiny_unet3d_backbone, tiny_wan_backbone
from motion_core.clips import Clip
from motion_core.devices import available_devices, resolve_device
from motion_core.errors import InvalidInputError, LoraMismatchError, MotionCoreError
from motion_core.lora.stack import LoraStack
from motion_core.lora.synthetic import random_lora
from motion_core.native import check_native_fit, native_loras
from motion_core.numbers import finite, positive_fps
from motion_core.recipes import get_recipe
from motion_core.sampling import SampleRequest, validate_request
from motion_core.training import TrainingConfig
from motion_core.video import VideoReadOptions, load_reference_video

BAD_NUMBERS = [math.nan, math.inf, -math.inf]
SMALL = ["--steps", "2", "--frames", "4", "--width", "16", "--height", "16", "--cfg", "1"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_diffusers_folder(tmp_path_factory.mktemp("model") / "tiny", "unet3d", seed=0)


@pytest.fixture(scope="module")
def wan_lora():
    with torch.no_grad():
        return random_lora(tiny_wan_backbone(), ("temporal_attn",), rank=2, alpha=4.0, name="spin")


# ---- 6: NaN and inf are refused wherever a number is taken ----------------------------------------------------
@pytest.mark.parametrize("value", [*BAD_NUMBERS, "abc", None])
def test_finite_refuses_what_is_not_a_finite_number_and_names_the_field(value):
    with pytest.raises(InvalidInputError, match=r"strength must be a finite number.*Use e\.g\. 1\.0"):
        finite(value, "strength", "1.0")


@pytest.mark.parametrize("value", [0.0, -2.5, "3"])
def test_finite_passes_numbers(value):
    assert finite(value, "x") == float(value)


@pytest.mark.parametrize("strength", BAD_NUMBERS)
def test_native_apply_refuses_a_nan_or_inf_strength(wan_lora, strength):
    with pytest.raises(InvalidInputError, match="Apply Motion LoRA: strength must be a finite number"):
        native_loras(wan_lora, strength)
    with pytest.raises(InvalidInputError, match="strength must be a finite number"):
        native_loras(LoraStack().add(wan_lora, 1.0), strength)


def test_native_apply_refuses_a_strength_product_that_overflows(wan_lora):
    with pytest.raises(InvalidInputError, match="strength x stack strength must be a finite number"):
        native_loras(LoraStack().add(wan_lora, 1e308), 5.0)


def test_native_apply_still_takes_finite_strengths(wan_lora):
    (entry,) = native_loras(wan_lora, -0.5)
    assert entry.strength == -0.5


@pytest.mark.parametrize("field, value, words", [
    ("lr", math.nan, "lr must be positive and finite; got nan"),
    ("lr", math.inf, "lr must be positive and finite; got inf"),
    ("alpha", math.inf, "alpha must be positive and finite"),
    ("weight_decay", math.nan, "weight_decay must be a finite number"),
    ("weight_decay", math.inf, "weight_decay must be a finite number"),
    ("grad_clip", math.inf, "grad_clip must be a finite number"),
    ("dropout", math.nan, "dropout must be in"),
    ("timestep_skew", math.nan, "timestep_skew must be a positive number"),
])
def test_training_numbers_must_be_finite(field, value, words):
    with pytest.raises(InvalidInputError, match=re.escape(words)):
        TrainingConfig(**{field: value}).resolve(get_recipe("naive").config)


@pytest.mark.parametrize("field", ["target_fps", "folder_fps"])
@pytest.mark.parametrize("value", BAD_NUMBERS)
def test_video_reading_rates_must_be_finite(field, value):
    with pytest.raises(InvalidInputError, match=f"{field} must be"):
        VideoReadOptions(**{field: value})


@pytest.mark.parametrize("fps", [*BAD_NUMBERS, 0.0])
def test_a_clip_refuses_a_frame_rate_that_is_not_finite_and_positive(fps):
    with pytest.raises(InvalidInputError, match="fps must be a finite positive frame rate"):
        Clip.from_image(torch.zeros(2, 8, 8, 3), fps=fps)


# ---- 8: the frame rate is checked before any sampling ----------------------------------------------------------
@pytest.mark.parametrize("fps", [*BAD_NUMBERS, 0.0, -8.0])
def test_positive_fps_refuses_what_no_writer_takes(fps):
    with pytest.raises(InvalidInputError, match="fps"):
        positive_fps(fps)


@pytest.mark.parametrize("fps", [math.nan, 0.0, math.inf])
def test_sample_request_refuses_a_bad_frame_rate_before_the_denoiser_runs(fps):
    backbone = tiny_unet3d_backbone(0)
    calls = []
    backbone.denoiser.register_forward_hook(lambda *_: calls.append(1))
    request = SampleRequest(prompt="a square", steps=1, cfg=1.0, frames=4, width=16, height=16, fps=fps)
    with pytest.raises(InvalidInputError, match=r"frame rate \(fps\)"):
        validate_request(backbone, request)
    assert calls == []


def _no_model_load(monkeypatch):
    """Fail the test if the CLI gets as far as loading the model."""
    from motion_core import backbones

    def refuse(*_a, **_k):
        raise AssertionError("the model was loaded before the bad option was refused")

    monkeypatch.setattr(backbones, "load_backbone", refuse)


@pytest.mark.parametrize("fps, suffix", [("0", ".gif"), ("nan", ".mp4"), ("inf", ".webp"), ("-3", ".gif")])
def test_cli_sample_refuses_a_bad_fps_before_loading_or_sampling(model_dir, tmp_path, capsys, monkeypatch, fps,
                                                                 suffix):
    _no_model_load(monkeypatch)
    out = tmp_path / f"clip{suffix}"
    code = main(["sample", "--model", str(model_dir), "--prompt", "a", *SMALL, "--fps", fps, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "--fps must be" in err and "Traceback" not in err, err
    assert not out.exists()


# ---- 9: a device that is not there -----------------------------------------------------------------------------
@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    if hasattr(torch, "xpu"):
        monkeypatch.setattr(torch.xpu, "is_available", lambda: False)


@pytest.mark.parametrize("choice", ["cuda", "cuda:1", "mps"])
def test_a_missing_accelerator_is_named_with_what_to_pick(no_gpu, choice):
    with pytest.raises(InvalidInputError) as err:
        resolve_device(choice, "Load Video Model: device", also=("auto",))
    text = str(err.value)
    assert f"Load Video Model: device {choice!r} was asked for" in text
    assert "no " in text and "Pick one of: auto, cpu." in text


def test_a_gpu_index_past_the_last_gpu_names_how_many_there_are(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(InvalidInputError, match=r"'cuda:2' was asked for, but this machine has 2 CUDA devices"):
        resolve_device("cuda:2")
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    assert "cuda:0" in available_devices() and "cuda:1" in available_devices()


def test_a_broken_driver_reads_as_no_device(monkeypatch):
    def broken():
        raise RuntimeError("driver exploded")

    monkeypatch.setattr(torch.cuda, "is_available", broken)
    with pytest.raises(InvalidInputError, match="no CUDA device"):
        resolve_device("cuda")


@pytest.mark.parametrize("choice", ["gpu", "", "cuda:x"])
def test_a_device_name_torch_does_not_know_is_a_clear_error(choice):
    with pytest.raises(InvalidInputError, match="is not a device name. Pick one of: cpu"):
        resolve_device(choice)


def test_cpu_is_always_there():
    assert resolve_device("cpu") == torch.device("cpu") and available_devices()[0] == "cpu"


def test_training_config_refuses_a_missing_device(no_gpu):
    with pytest.raises(InvalidInputError, match="device 'cuda' was asked for"):
        TrainingConfig(device="cuda").resolve(get_recipe("naive").config)


@pytest.mark.parametrize("command", ["sample", "train"])
def test_cli_refuses_a_missing_device_before_loading(model_dir, tmp_path, capsys, monkeypatch, no_gpu, command):
    _no_model_load(monkeypatch)
    if command == "sample":
        args = ["sample", "--model", str(model_dir), "--prompt", "a", *SMALL, "--out", str(tmp_path / "c.gif")]
    else:
        args = ["train", "--model", str(model_dir), "--video", str(tmp_path / "not_read.mp4"),
                "--out", str(tmp_path / "l.safetensors")]
    code = main([*args, "--device", "cuda"])
    err = capsys.readouterr().err
    assert code == 2 and "--device 'cuda' was asked for" in err and "Pick one of: cpu" in err, err
    assert "Traceback" not in err and "NVIDIA" not in err


# ---- 7: a LoRA for another model size on a native MODEL ---------------------------------------------------------
GOOD = {"diffusion_model.blocks.0.self_attn.q.weight": ((128, 4), (4, 128)),
        "diffusion_model.patch_embedding.weight": ((128, 4, 1, 1, 1), (4, 16, 1, 2, 2))}
WEIGHTS = {"diffusion_model.blocks.0.self_attn.q.weight": (128, 128),
           "diffusion_model.blocks.0.self_attn.k.weight": (128, 128),
           "diffusion_model.patch_embedding.weight": (128, 16, 1, 2, 2)}


def test_fitting_factors_pass():
    check_native_fit("dance", GOOD, WEIGHTS, "WAN21")


def test_a_lora_for_another_size_names_its_layers_and_both_shapes():
    bigger = {"diffusion_model.blocks.0.self_attn.q.weight": ((256, 4), (4, 256)),
              "diffusion_model.patch_embedding.weight": ((256, 4, 1, 1, 1), (4, 16, 1, 2, 2))}
    with pytest.raises(LoraMismatchError) as err:
        check_native_fit("big", bigger, WEIGHTS, "WAN21")
    text = str(err.value)
    assert "LoRA 'big' does not fit this MODEL (WAN21): 2 of its 2 layers" in text
    assert "blocks.0.self_attn.q (" in text and "patch_embedding (" in text
    assert "makes [256, 256]" in text and "has [128, 128]" in text and "another size" in text


def test_one_bad_layer_among_good_ones_is_named_not_dropped():
    mixed = dict(GOOD, **{"diffusion_model.blocks.0.self_attn.k.weight": ((128, 4), (4, 96))})
    with pytest.raises(LoraMismatchError, match=r"1 of its 3 layers .*blocks\.0\.self_attn\.k \(the LoRA makes "
                                                r"\[128, 96\], the model has \[128, 128\]\)"):
        check_native_fit("mixed", mixed, WEIGHTS, "WAN21")


def test_factors_of_different_ranks_and_absent_weights_are_named():
    odd = {"diffusion_model.blocks.0.self_attn.q.weight": ((128, 4), (2, 128)),
           "diffusion_model.head.head.weight": ((64, 4), (4, 128))}
    with pytest.raises(LoraMismatchError) as err:
        check_native_fit("odd", odd, WEIGHTS, "WAN21")
    assert "factors of different ranks" in str(err.value) and "has no such weight" in str(err.value)


def test_many_bad_layers_are_counted_not_all_listed():
    factors = {f"diffusion_model.blocks.{i}.ffn.0.weight": ((8, 2), (2, 8)) for i in range(7)}
    weights = {k: (16, 8) for k in factors}
    with pytest.raises(LoraMismatchError, match=r"7 of its 7 layers .* and 4 more\."):
        check_native_fit("wide", factors, weights, "WAN21")


# ---- 13: a full disk does not lose the sampled video -----------------------------------------------------------
@pytest.fixture
def recovery(tmp_path, monkeypatch):
    import tempfile

    tmp = tmp_path / "system_tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp / "motion_core_recovery"


def _full_disk_under(monkeypatch, folder):
    from motion_core.cli import video_out

    real = video_out._encode

    def encode(pixels, path, fps):
        if folder is None or Path(path).parent == folder:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(pixels, path, fps)

    monkeypatch.setattr(video_out, "_encode", encode)


def _sample(model_dir, out):
    return main(["sample", "--model", str(model_dir), "--prompt", "a square", *SMALL, "--out", str(out)])


def test_a_full_disk_at_out_keeps_the_video_in_the_recovery_folder(model_dir, tmp_path, capsys, monkeypatch,
                                                                   recovery):
    out = tmp_path / "full" / "clip.gif"
    out.parent.mkdir()
    _full_disk_under(monkeypatch, out.parent)
    assert _sample(model_dir, out) == 2
    err = capsys.readouterr().err
    (rescued,) = recovery.glob("clip-recovered-*.gif")
    assert "No space left on device" in err and f"saved instead to {rescued}" in err, err
    assert load_reference_video(rescued).num_frames == 4
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_when_no_video_can_be_encoded_the_frames_are_kept_as_npy(model_dir, tmp_path, capsys, monkeypatch,
                                                                  recovery):
    out = tmp_path / "clip.mp4"
    _full_disk_under(monkeypatch, None)
    assert _sample(model_dir, out) == 2
    err = capsys.readouterr().err
    (rescued,) = recovery.glob("clip-recovered-*.npy")
    assert f"frames were saved instead to {rescued}" in err and "numpy.load" in err, err
    frames = np.load(rescued)
    assert frames.shape == (4, 16, 16, 3) and frames.dtype == np.uint8


def test_when_nothing_can_be_written_the_error_says_so(model_dir, tmp_path, capsys, monkeypatch, recovery):
    from motion_core.cli import video_out

    _full_disk_under(monkeypatch, None)
    monkeypatch.setattr(video_out, "_save_frames", lambda *_: None)
    assert _sample(model_dir, tmp_path / "clip.webp") == 2
    err = capsys.readouterr().err
    assert "No fallback folder" in err and str(recovery) in err and "same seed" in err, err


def test_an_existing_out_is_still_refused_before_sampling(model_dir, tmp_path, capsys, monkeypatch, recovery):
    _no_model_load(monkeypatch)
    out = tmp_path / "taken.gif"
    out.write_bytes(b"keep")
    assert _sample(model_dir, out) == 2 and "already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"keep" and not recovery.exists()


def test_the_error_type_is_the_packs(model_dir, tmp_path, monkeypatch, recovery):
    from motion_core.cli.video_out import write_or_recover

    _full_disk_under(monkeypatch, None)
    with pytest.raises(MotionCoreError, match="saved instead"):
        write_or_recover(torch.rand(2, 8, 8, 3), tmp_path / "x.gif", 8.0, overwrite=False, fallbacks=[recovery])


def test_an_out_that_appears_while_sampling_is_not_replaced_and_the_video_is_kept(tmp_path, recovery):
    from motion_core.cli.video_out import write_or_recover

    out = tmp_path / "race.gif"
    out.write_bytes(b"someone else's")
    with pytest.raises(MotionCoreError, match="already exists.*saved instead to"):
        write_or_recover(torch.rand(2, 8, 8, 3), out, 8.0, overwrite=False, fallbacks=[recovery])
    assert out.read_bytes() == b"someone else's" and len(list(recovery.glob("race-recovered-*.gif"))) == 1
