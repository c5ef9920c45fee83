"""``python -m motion_core sample``: the sampler on the command line, LoRA stack included, never overwriting."""

import pytest
import torch
from video_samples import sample_frames, write_animated_image

from motion_core.__main__ import main
from motion_core.backbones import save_tiny_diffusers_folder
from motion_core.cli.sample import parse_lora
from motion_core.lora import save_lora
from motion_core.lora.synthetic import random_lora
from motion_core.video import load_reference_video

SMALL = ["--steps", "2", "--frames", "4", "--width", "16", "--height", "16", "--cfg", "1"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return save_tiny_diffusers_folder(tmp_path_factory.mktemp("model") / "tiny", "unet3d", seed=0)


def test_sample_command_writes_a_video_of_the_requested_frames(model, tmp_path, capsys):
    out = tmp_path / "clip.gif"
    assert main(["sample", "--model", str(model), "--prompt", "a square", *SMALL, "--out", str(out)]) == 0
    assert "step 2/2" in capsys.readouterr().out
    clip = load_reference_video(out)
    assert clip.num_frames == 4 and tuple(clip.frames.shape[1:3]) == (16, 16)


def test_sample_command_applies_the_lora_stack(model, tmp_path):
    from motion_core.backbones import load_backbone

    lora = random_lora(load_backbone(model), ["temporal_attn"], rank=2, std=1.0, seed=1)
    path = save_lora(lora, tmp_path / "motion.safetensors")
    plain, with_lora = tmp_path / "plain.webp", tmp_path / "lora.webp"
    main(["sample", "--model", str(model), "--prompt", "a square", *SMALL, "--out", str(plain)])
    main(["sample", "--model", str(model), "--prompt", "a square", *SMALL, "--lora", f"{path}:1.0:0:1",
          "--out", str(with_lora)])
    a = load_reference_video(plain).frames.float()
    b = load_reference_video(with_lora).frames.float()
    assert (a - b).abs().mean() > 1.0


def test_sample_command_refuses_to_overwrite_unless_asked(model, tmp_path, capsys):
    out = tmp_path / "clip.gif"
    out.write_bytes(b"keep me")
    assert main(["sample", "--model", str(model), "--prompt", "x", *SMALL, "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == b"keep me"
    assert main(["sample", "--model", str(model), "--prompt", "x", *SMALL, "--out", str(out), "--overwrite"]) == 0
    assert load_reference_video(out).num_frames == 4


def test_lora_arguments_parse_strength_and_step_range():
    assert parse_lora("a.safetensors") == ("a.safetensors", 1.0, 0.0, 1.0)
    assert parse_lora("a.safetensors:0.5") == ("a.safetensors", 0.5, 0.0, 1.0)
    assert parse_lora("C:/x/a.safetensors:0.5:0.2:0.8") == ("C:/x/a.safetensors", 0.5, 0.2, 0.8)
    with pytest.raises(Exception, match="STRENGTH"):
        parse_lora("a.safetensors:1:2")


def test_train_and_sample_commands_run_wan_from_the_files_comfyui_users_have(tmp_path, capsys):
    """A Wan diffusion-model file with its VAE and UMT5 files: train a motion LoRA, then sample with it."""
    from wan_samples import write_tiny_wan_files

    files = write_tiny_wan_files(tmp_path / "wan")["root"]
    model = ["--model", str(files / "wan_tiny_fp16.safetensors"), "--vae", str(files / "wan_tiny_vae.safetensors"),
             "--text-encoder", str(files / "umt5_tiny_fp16.safetensors")]
    video = write_animated_image(tmp_path / "clip.gif", sample_frames(9, 32, 32), 8)
    lora = tmp_path / "wan_motion.safetensors"
    assert main(["train", *model, "--video", str(video), "--caption", "a square moves right", "--steps", "2",
                 "--rank", "2", "--width", "16", "--height", "16", "--frames", "5", "--out", str(lora),
                 "--no-gradient-checkpointing"]) == 0
    from motion_core.lora import load_lora

    assert load_lora(lora).family == "wan"
    out = tmp_path / "wan.gif"
    assert main(["sample", *model, "--prompt", "a circle", "--steps", "2", "--frames", "5", "--width", "16",
                 "--height", "16", "--lora", f"{lora}:1.0", "--out", str(out)]) == 0
    assert load_reference_video(out).num_frames == 5


def test_sample_command_runs_a14b_with_both_experts(tmp_path, capsys):
    """The high-noise file as --model and the low-noise file as --second-expert: both experts take part."""
    import shutil

    from wan_samples import write_tiny_wan_files

    made = {seed: write_tiny_wan_files(tmp_path / f"seed{seed}", seed)["root"] for seed in (0, 1)}
    high, low = tmp_path / "tiny_t2v_high_noise.safetensors", tmp_path / "tiny_t2v_low_noise.safetensors"
    shutil.copy(made[0] / "wan_tiny_fp16.safetensors", high)
    shutil.copy(made[1] / "wan_tiny_fp16.safetensors", low)
    common = ["sample", "--model", str(high), "--vae", str(made[0] / "wan_tiny_vae.safetensors"), "--text-encoder",
              str(made[0] / "umt5_tiny_fp16.safetensors"), "--prompt", "a circle", "--steps", "5", "--frames", "5",
              "--width", "16", "--height", "16", "--cfg", "1", "--scheduler", "euler"]
    alone, both = tmp_path / "alone.webp", tmp_path / "both.webp"
    assert main([*common, "--out", str(alone)]) == 0
    assert main([*common, "--second-expert", str(low), "--out", str(both)]) == 0
    assert not torch.equal(load_reference_video(alone).frames, load_reference_video(both).frames)
