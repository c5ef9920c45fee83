"""``python -m motion_core train``: the node's options on the command line, printing progress, saving LoRAs."""

import pytest
from video_samples import sample_frames, write_animated_image

from motion_core.__main__ import main
from motion_core.backbones import save_tiny_diffusers_folder
from motion_core.lora import load_lora


def test_train_command_prints_progress_and_writes_motion_and_appearance_loras(tmp_path, capsys):
    model = save_tiny_diffusers_folder(tmp_path / "model", "unet3d", seed=0)
    video = write_animated_image(tmp_path / "clip.gif", sample_frames(6, 32, 32), 8)
    out = tmp_path / "dance.safetensors"
    code = main(["train", "--model", str(model), "--video", str(video), "--caption", "a square moves right",
                 "--recipe", "motion_director", "--steps", "2", "--rank", "2", "--width", "16", "--height", "16",
                 "--frames", "4", "--checkpoint-every", "2", "--checkpoint-dir", str(tmp_path / "ckpt"),
                 "--out", str(out), "--no-gradient-checkpointing"])
    printed = capsys.readouterr().out
    assert code == 0 and "step 2/2" in printed and "checkpoint:" in printed
    lora = load_lora(out)
    assert (lora.recipe, lora.kind, lora.rank, lora.steps, lora.caption) == (
        "motion_director", "motion", 2, 2, "a square moves right")
    assert load_lora(tmp_path / "dance_appearance.safetensors").kind == "appearance"


def test_train_command_reports_bad_input_as_an_error_line(tmp_path, capsys):
    model = save_tiny_diffusers_folder(tmp_path / "model", "unet3d", seed=0)
    video = write_animated_image(tmp_path / "clip.gif", sample_frames(3, 32, 32), 8)
    code = main(["train", "--model", str(model), "--video", str(video), "--frames", "8", "--width", "16",
                 "--height", "16", "--out", str(tmp_path / "x.safetensors")])
    assert code == 2 and "has 3 frames but training uses 8" in capsys.readouterr().err


def test_unknown_recipe_is_refused_by_the_parser():
    with pytest.raises(SystemExit):
        main(["train", "--model", "m", "--video", "v", "--recipe", "nope", "--out", "x.safetensors"])


def test_train_command_passes_recipe_options_motion_director_with_the_temporal_kernel(tmp_path, capsys):
    from motion_core.backbones import save_tiny_wan_diffusers_folder

    model = save_tiny_wan_diffusers_folder(tmp_path / "wan", seed=0)
    video = write_animated_image(tmp_path / "clip.gif", sample_frames(6, 32, 32), 8)
    out = tmp_path / "dance.safetensors"
    code = main(["train", "--model", str(model), "--video", str(video), "--caption", "a square moves right",
                 "--recipe", "motion_director", "--recipe-option", "temporal_kernel=true", "--steps", "1",
                 "--rank", "2", "--width", "16", "--height", "16", "--frames", "5", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    lora = load_lora(out)
    assert lora.kernel_spec is not None and lora.kernel_sites() == ["blocks.0", "blocks.1"]
    assert not load_lora(tmp_path / "dance_appearance.safetensors").kernel
    bad = main(["train", "--model", str(model), "--video", str(video), "--recipe-option", "tracking_weight=1",
                "--width", "16", "--height", "16", "--frames", "5", "--out", str(tmp_path / "x.safetensors")])
    assert bad == 2 and "no option" in capsys.readouterr().err
