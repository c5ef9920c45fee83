"""The noise prior as a native starting noise, without ComfyUI: sizes read from the latent, the blend, the checks."""

import pytest
import torch

from motion_core.errors import InvalidInputError
from motion_core.native import ReferenceNoisePlan, latent_geometry, reference_inversion, reference_start
from motion_core.native.reference_noise import inversion_timesteps
from motion_core.sampling.noise_prior import flow_invert, prepare_reference


@pytest.fixture(scope="module")
def wan():
    from motion_core.backbones.wan.tiny import tiny_wan_backbone

    return tiny_wan_backbone()


def test_the_video_size_comes_from_the_latent(wan):
    channels, scale = wan.latent_channels, wan.vae_scale_factor
    assert latent_geometry(wan, (1, channels, 2, 8, 6)) == (5, 8 * scale, 6 * scale)


def test_a_latent_of_another_model_is_refused(wan):
    with pytest.raises(InvalidInputError, match="not a video latent of this model"):
        latent_geometry(wan, (1, 4, 8, 8))


@pytest.mark.parametrize("p,mode", [(1.5, "full"), (0.5, "colour")])
def test_bad_plans_are_refused(p, mode):
    with pytest.raises(InvalidInputError):
        ReferenceNoisePlan(p=p, mode=mode)


def test_p_zero_is_the_fresh_noise_and_p_one_the_inversion_for_every_batch_item():
    inverted, noise = torch.randn(1, 4, 3, 2, 2), torch.randn(2, 4, 3, 2, 2)
    assert torch.equal(reference_start(inverted, noise, ReferenceNoisePlan(p=0.0)), noise)
    assert torch.equal(reference_start(inverted, noise, ReferenceNoisePlan(p=1.0)), inverted.expand(2, -1, -1, -1, -1))


def test_motion_mode_keeps_the_fresh_noises_frame_mean():
    inverted, noise = torch.randn(1, 4, 3, 2, 2), torch.randn(1, 4, 3, 2, 2)
    start = reference_start(inverted, noise, ReferenceNoisePlan(p=1.0, mode="motion"))
    assert torch.allclose(start.mean(2), noise.mean(2), atol=1e-6)
    assert not torch.allclose(start, noise)


def test_the_inversion_climbs_an_euler_schedule_with_the_graphs_shift_to_sigma_one(wan):
    steps = inversion_timesteps(wan, ReferenceNoisePlan(steps=4, shift=5.0))
    assert len(steps) == 4 and float(steps[0]) == pytest.approx(1000.0)
    assert not torch.allclose(steps, inversion_timesteps(wan, ReferenceNoisePlan(steps=4, shift=1.0)))


def test_reference_inversion_is_the_flow_inversion_of_the_clip_at_the_latents_size(wan):
    clip = torch.rand(7, 20, 20, 3)
    shape = (1, wan.latent_channels, 2, 4, 4)
    plan = ReferenceNoisePlan(steps=2)
    ours = reference_inversion(wan, clip, shape, plan)
    assert ours.shape == shape
    frames, height, width = latent_geometry(wan, shape)
    with torch.no_grad():
        clean = wan.encode_video(prepare_reference(clip, frames, height, width)).float()
        expected = flow_invert(wan, clean, inversion_timesteps(wan, plan), text_states=wan.encode_prompt([""]))
    assert torch.equal(ours, expected.cpu())


def test_a_model_core_cannot_run_natively_is_refused():
    from motion_core.backbones import tiny_unet3d_backbone

    with pytest.raises(InvalidInputError, match="native flow samplers"):
        reference_inversion(tiny_unet3d_backbone(seed=0), torch.rand(4, 16, 16, 3), (1, 4, 4, 2, 2),
                            ReferenceNoisePlan())
