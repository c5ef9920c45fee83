"""Sampling on the Wan family: flow solvers, CFG with a negative prompt, the LoRA stack restored exactly, the noise
prior through flow-ODE inversion, previews and cancel."""

import pytest
import torch

from motion_core.backbones.wan.tiny import tiny_wan_backbone
from motion_core.errors import CancelledError, InvalidInputError
from motion_core.lora.synthetic import random_lora
from motion_core.sampling import LoraStack, SampleRequest, SamplingCallbacks, flow_invert, make_scheduler, sample_video

SMALL = dict(frames=5, width=16, height=16, steps=4)


@pytest.fixture(scope="module")
def wan():
    return tiny_wan_backbone(0)


@pytest.mark.parametrize("scheduler", ["auto", "unipc", "euler", "dpmpp_2m"])
def test_each_flow_solver_samples_a_clip_of_the_requested_frames(wan, scheduler):
    result = sample_video(wan, SampleRequest("a wave", scheduler=scheduler, cfg=3.0, negative_prompt="blur", **SMALL))
    assert tuple(result.frames.shape) == (5, 16, 16, 3) and result.latents.shape[2] == 2
    assert torch.isfinite(result.frames).all() and 0 <= float(result.frames.min()) <= float(result.frames.max()) <= 1


def test_flow_solvers_carry_the_models_shift(wan):
    unipc = make_scheduler("unipc", wan.scheduler.config, wan.objective)
    unipc.set_timesteps(10)
    shift, u = wan.objective.shift, 1.0
    assert float(unipc.timesteps[0]) == pytest.approx(1000 * shift * u / (1 + (shift - 1) * u), rel=1e-3)
    with pytest.raises(InvalidInputError, match="does not work with flow-matching"):
        sample_video(wan, SampleRequest("x", scheduler="ddim", **SMALL))


def test_negative_prompt_changes_a_guided_sample(wan):
    a = sample_video(wan, SampleRequest("a wave", cfg=4.0, negative_prompt="", **SMALL)).latents
    b = sample_video(wan, SampleRequest("a wave", cfg=4.0, negative_prompt="a still photo", **SMALL)).latents
    assert not torch.allclose(a, b)


def test_lora_stack_changes_the_sample_and_leaves_the_base_bit_identical(wan):
    lora = random_lora(wan, ["temporal_attn"], rank=2, std=0.5, seed=1)
    before = {k: v.clone() for k, v in wan.denoiser.state_dict().items()}
    base = sample_video(wan, SampleRequest("a wave", cfg=1.0, **SMALL)).latents
    stacked = sample_video(wan, SampleRequest("a wave", cfg=1.0, lora_stack=LoraStack().add(lora, 1.0, 0.0, 0.5),
                                              **SMALL))
    assert not torch.allclose(base, stacked.latents) and stacked.merge_count >= 1
    assert all(torch.equal(before[k], v) for k, v in wan.denoiser.state_dict().items())
    again = sample_video(wan, SampleRequest("a wave", cfg=1.0, **SMALL)).latents
    assert torch.equal(base, again)


def test_flow_inversion_then_sampling_returns_to_the_reference(wan):
    """The flow ODE run up and back down with mirrored Euler steps lands near where it started (the residual is
    the discretisation error, which shrinks with the step count)."""
    g = torch.Generator().manual_seed(0)
    clean = torch.randn(1, wan.latent_channels, 2, 8, 8, generator=g) * 0.5
    text = wan.encode_prompt([""])
    errors = []
    for steps in (4, 32):
        scheduler = make_scheduler("euler", wan.scheduler.config, wan.objective)
        scheduler.set_timesteps(steps)
        z = flow_invert(wan, clean, scheduler.timesteps, text_states=text)
        for t in scheduler.timesteps:
            z = scheduler.step(wan.denoise(z, t, text).float(), t, z).prev_sample
        errors.append(float((z - clean).abs().mean()))
    assert errors[1] < errors[0] and errors[1] < 0.05 * float(clean.abs().mean()) + 0.02


@pytest.mark.parametrize("mode", ["full", "motion"])
def test_noise_prior_moves_the_start_towards_the_reference(wan, mode):
    reference = torch.rand(5, 16, 16, 3, generator=torch.Generator().manual_seed(2))
    plain = sample_video(wan, SampleRequest("a wave", cfg=1.0, **SMALL)).latents
    prior = sample_video(wan, SampleRequest("a wave", cfg=1.0, noise_prior_clip=reference, noise_prior_p=0.5,
                                            noise_prior_mode=mode, **SMALL)).latents
    assert not torch.allclose(plain, prior)


def test_previews_and_cancel(wan):
    seen = []
    sample_video(wan, SampleRequest("a wave", cfg=1.0, **SMALL),
                 SamplingCallbacks(progress=lambda s, t, p: seen.append((s, None if p is None else tuple(p.shape)))))
    assert [s for s, _ in seen] == [1, 2, 3, 4] and seen[-1][1] is not None and seen[-1][1][-1] == 3
    with pytest.raises(CancelledError):
        sample_video(wan, SampleRequest("a wave", cfg=1.0, **SMALL),
                     SamplingCallbacks(should_cancel=lambda: True))
