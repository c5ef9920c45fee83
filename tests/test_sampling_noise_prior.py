"""Noise prior: DDIM inversion of the reference clip, blended with fresh noise by p."""

from dataclasses import replace

import pytest
import torch
from test_sampling_support import moving_clip, request

from motion_core.backbones import tiny_unet3d_backbone
from motion_core.clips import Clip
from motion_core.errors import CancelledError, InvalidInputError
from motion_core.recipes.losses import motion_component
from motion_core.sampling import SamplingCallbacks, prepare_reference, sample_video


def _calibrated_backbone(output_scale: float):
    """A tiny model whose latents have unit spread (as a real VAE's scaling factor gives) and whose prediction is
    scaled by ``output_scale`` (0: a constant prediction, the conv_out bias)."""
    backbone = tiny_unet3d_backbone(0)
    spread = backbone.encode_video(moving_clip()).float().std().item()
    backbone.vae.register_to_config(scaling_factor=backbone.vae.config.scaling_factor / spread)
    with torch.no_grad():
        backbone.denoiser.conv_out.weight.mul_(output_scale)
        if output_scale == 0:
            backbone.denoiser.conv_out.bias.copy_(torch.tensor([0.3, -0.2, 0.1, 0.5]))
        else:
            backbone.denoiser.conv_out.bias.mul_(output_scale)
    return backbone


def _prior_request(p: float, steps: int = 4):
    return request(prompt="", negative_prompt="", cfg=1.0, steps=steps, noise_prior_clip=moving_clip(),
                   noise_prior_p=p)


def _relative_error(latents, reference):
    return float((latents - reference).norm() / reference.norm())


def test_inversion_is_the_exact_mirror_of_ddim_sampling():
    """With a prediction that does not depend on the latents the DDIM ODE is solved exactly both ways, so any
    mismatch would be a timestep or alpha bookkeeping error."""
    backbone = _calibrated_backbone(0.0)
    reference = backbone.encode_video(moving_clip()).float()
    result = sample_video(backbone, _prior_request(1.0))
    torch.testing.assert_close(result.latents, reference, rtol=0, atol=1e-4)


@pytest.fixture(scope="module")
def smooth_backbone():
    return _calibrated_backbone(0.1)


def test_inversion_then_sampling_with_p1_reproduces_the_reference_latents_closely(smooth_backbone):
    backbone = smooth_backbone
    reference = backbone.encode_video(moving_clip()).float()
    with_prior = sample_video(backbone, _prior_request(1.0)).latents
    without = sample_video(backbone, _prior_request(0.0)).latents
    assert _relative_error(with_prior, reference) < 0.1
    assert _relative_error(without, reference) > 1.0


def test_p_blends_between_the_inversion_and_fresh_noise(smooth_backbone):
    backbone = smooth_backbone
    reference = backbone.encode_video(moving_clip()).float()
    errors = [_relative_error(sample_video(backbone, _prior_request(p)).latents, reference) for p in (1.0, 0.5, 0.0)]
    assert errors[0] < errors[1] < errors[2]
    no_clip = sample_video(backbone, request(prompt="", negative_prompt="", cfg=1.0, steps=4)).latents
    assert torch.equal(sample_video(backbone, _prior_request(0.0)).latents, no_clip)


def test_inversion_steps_count_in_progress_and_can_be_cancelled(smooth_backbone):
    backbone = smooth_backbone
    seen = []
    sample_video(backbone, _prior_request(0.5, steps=2),
                 SamplingCallbacks(progress=lambda s, t, p: seen.append((s, t, p is None)), preview="rgb"))
    assert seen == [(1, 4, True), (2, 4, True), (3, 4, False), (4, 4, False)]
    with pytest.raises(CancelledError, match="1 of 4"):
        sample_video(backbone, _prior_request(0.5, steps=2),
                     SamplingCallbacks(progress=lambda *a: seen.append(a), should_cancel=lambda: len(seen) >= 5))


def test_reference_is_resampled_to_the_requested_frames_and_size():
    clip = Clip.from_image(moving_clip(frames=5, size=32), fps=8.0)
    video = prepare_reference(clip, frames=8, height=16, width=24)
    assert video.shape == (8, 16, 24, 3) and video.dtype == torch.float32
    assert torch.equal(video[0], video[1]) or torch.equal(video[1], video[2])  # 5 frames stretched over 8


def test_motion_prior_takes_only_the_frame_to_frame_part_of_the_inversion():
    from motion_core.sampling import blend_motion_noise, blend_prior

    g = torch.Generator().manual_seed(0)
    inverted, noise = torch.randn(2, 4, 8, 5, 5, generator=g) + 3.0, torch.randn(2, 4, 8, 5, 5, generator=g)
    assert torch.equal(blend_prior(inverted, 0.0, noise, "motion"), noise)
    start = blend_motion_noise(inverted, 0.5, noise)
    # the part common to all frames is the fresh noise's own: nothing still of the reference carries over
    torch.testing.assert_close(start.mean(dim=2), noise.mean(dim=2))
    torch.testing.assert_close(motion_component(start), 0.5**0.5 * motion_component(inverted) + 0.5**0.5 * motion_component(noise))
    still = inverted[:, :, :1].expand_as(inverted)  # a reference without motion adds nothing at all
    torch.testing.assert_close(blend_motion_noise(still, 1.0, noise), noise.mean(dim=2, keepdim=True).expand_as(noise))
    with pytest.raises(InvalidInputError, match="full, motion"):
        blend_prior(inverted, 0.5, noise, "colour")


def test_motion_prior_keeps_the_references_motion_in_sampling_and_not_its_still_part(smooth_backbone):
    backbone = smooth_backbone
    reference = backbone.encode_video(moving_clip()).float()
    full = sample_video(backbone, _prior_request(1.0)).latents
    motion = sample_video(backbone, replace(_prior_request(1.0), noise_prior_mode="motion")).latents
    fresh = sample_video(backbone, _prior_request(0.0)).latents
    moving_error = [_relative_error(motion_component(x), motion_component(reference)) for x in (full, motion, fresh)]
    still_error = [_relative_error(x.mean(dim=2), reference.mean(dim=2)) for x in (full, motion, fresh)]
    assert moving_error[1] < 0.5 * moving_error[2]  # the motion carries over...
    assert still_error[1] > 3 * still_error[0]  # ...the look, which the full prior reproduces, does not


def test_an_unknown_noise_prior_mode_is_refused_before_sampling(smooth_backbone):
    with pytest.raises(InvalidInputError, match="noise_prior_mode"):
        sample_video(smooth_backbone, replace(_prior_request(0.5), noise_prior_mode="colour"))
