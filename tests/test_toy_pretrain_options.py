"""Pretraining options added from the GPU settings sweep: timestep skew, the compiled training forward, --vae-from."""

import pytest
import torch

from motion_core.toy.pretrain.__main__ import main as pretrain
from motion_core.toy.pretrain.compiled_forward import COMPILE_FROM_STEPS, TrainingForward, use_compile
from motion_core.toy.pretrain.t2v_stage import draw_timesteps

TINY = ["--clips", "6", "--decoder-steps", "0", "--t2v-steps", "2", "--batch", "2", "--threads", "1"]


def test_timesteps_are_uniform_by_default_and_the_same_draws_as_before():
    plain = torch.randint(0, 1000, (4096,), generator=torch.Generator().manual_seed(3))
    drawn = draw_timesteps(4096, 1000, 0.0, torch.Generator().manual_seed(3))
    assert torch.equal(plain, drawn)


def test_high_noise_share_moves_that_share_into_the_noisier_half():
    t = draw_timesteps(20000, 1000, 0.5, torch.Generator().manual_seed(0))
    assert t.min() >= 0 and t.max() < 1000
    assert abs((t >= 500).float().mean().item() - 0.75) < 0.02  # half redrawn high, plus half of the uniform rest
    assert (draw_timesteps(2000, 1000, 1.0, torch.Generator().manual_seed(0)) >= 500).all()


def test_compiling_is_automatic_only_for_runs_long_enough_to_pay_back():
    assert not use_compile("auto", COMPILE_FROM_STEPS - 1) and use_compile("auto", COMPILE_FROM_STEPS)
    assert use_compile("on", 2) and not use_compile("off", 5000)
    with pytest.raises(ValueError, match="auto, on or off"):
        use_compile("yes", 10)


def _tiny_unet():
    from motion_core.backbones.unet3d.tiny import tiny_unet3d_backbone

    return tiny_unet3d_backbone(0).denoiser


def test_training_forward_uses_plain_attention_on_cpu_and_matches_the_unet():
    from diffusers.models.attention_processor import AttnProcessor

    unet = _tiny_unet()
    x = torch.randn(1, 4, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    states = torch.randn(1, 6, unet.config.cross_attention_dim, generator=torch.Generator().manual_seed(1))
    expected = unet(x, 10, encoder_hidden_states=states).sample
    forward = TrainingForward(unet, compile=False, device="cpu")
    assert all(isinstance(p, AttnProcessor) for p in unet.attn_processors.values())
    torch.testing.assert_close(forward(x, 10, states), expected, rtol=1e-4, atol=1e-5)


def test_a_failing_compile_falls_back_to_eager_and_says_so():
    from torch._dynamo.exc import BackendCompilerFailed

    unet, lines = _tiny_unet(), []
    x = torch.randn(1, 4, 4, 8, 8)
    states = torch.randn(1, 6, unet.config.cross_attention_dim)
    forward = TrainingForward(unet, compile=False, device="cpu", log=lines.append)

    def broken(*args, **kwargs):
        raise BackendCompilerFailed("inductor", RuntimeError("no C++ compiler"), None)

    forward.compiled = broken
    assert forward(x, 10, states).shape == x.shape
    assert forward.compiled is None and "torch.compile failed" in lines[0] and "uncompiled" in lines[0]

    def other_bug(*args, **kwargs):
        raise KeyError("not a compile problem")

    forward.compiled = other_bug
    with pytest.raises(KeyError):  # only compile failures are absorbed
        forward(x, 10, states)


def test_vae_from_reuses_that_vae_and_trains_a_fresh_text_to_video_model(tmp_path):
    from safetensors.torch import load_file

    source, fresh = tmp_path / "source", tmp_path / "fresh"
    assert pretrain(["--out", str(source), "--vae-steps", "2", *TINY]) == 0
    assert pretrain(["--out", str(fresh), "--vae-from", str(source), "--seed", "1", *TINY]) == 0
    name = "diffusion_pytorch_model.safetensors"
    vae_a, vae_b = load_file(source / "vae" / name), load_file(fresh / "vae" / name)
    assert vae_a.keys() == vae_b.keys() and all(torch.equal(vae_a[k], vae_b[k]) for k in vae_a)
    unet_a, unet_b = load_file(source / "unet" / name), load_file(fresh / "unet" / name)
    assert any(not torch.equal(unet_a[k], unet_b[k]) for k in unet_a)
    assert str(source) in (fresh / "README.md").read_text()


def test_vae_from_and_continue_from_together_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        pretrain(["--out", str(tmp_path / "x"), "--vae-from", str(tmp_path), "--continue-from", str(tmp_path), *TINY])
    assert "only one of --continue-from and --vae-from" in capsys.readouterr().err


def test_mixed_noise_is_plain_randn_at_zero_and_shares_a_static_part_across_frames_otherwise():
    from motion_core.toy.pretrain.t2v_stage import mixed_noise

    shape = (64, 4, 8, 6, 6)
    plain = torch.randn(shape, generator=torch.Generator().manual_seed(5))
    assert torch.equal(mixed_noise(shape, 0.0, torch.Generator().manual_seed(5)), plain)
    mixed = mixed_noise(shape, 0.9, torch.Generator().manual_seed(5))
    assert abs(mixed.std().item() - 1.0) < 0.03 and abs(mixed.mean().item()) < 0.03  # still N(0, I) per frame
    a, b = mixed[:, :, 0].flatten(), mixed[:, :, 5].flatten()
    correlation = torch.corrcoef(torch.stack([a, b]))[0, 1].item()
    assert 0.35 < correlation < 0.55  # E[a] = 0.45 for a ~ U(0, 0.9)
    c, d = plain[:, :, 0].flatten(), plain[:, :, 5].flatten()
    assert abs(torch.corrcoef(torch.stack([c, d]))[0, 1].item()) < 0.05
