"""first_step compares what a model says from pure noise with what the training clips say under each prompt."""

import pytest
import torch

from motion_core.errors import InvalidInputError
from motion_core.research.first_step import (between_prompt_variance, first_step_mean, main, relative_spread,
                                        text_separation, true_mean)


def test_a_difference_constant_over_frames_has_no_frame_varying_part():
    base = torch.randn(4, 8, 5, 5)
    means = torch.stack([base + k for k in range(4)])  # prompts differ by a constant in every frame
    v = between_prompt_variance(means)
    assert v["total"] == pytest.approx(torch.arange(4.0).var().item(), rel=1e-4)
    assert v["frame_varying"] == pytest.approx(0.0, abs=1e-8)


def test_a_difference_that_moves_through_the_frames_is_all_frame_varying():
    ramp = torch.linspace(-1, 1, 5)[None, :, None, None].expand(4, 5, 6, 6)
    means = torch.stack([ramp * s for s in (1.0, -1.0, 2.0, -2.0)])  # "left" vs "right": opposite ramps, mean 0
    v = between_prompt_variance(means)
    assert v["total"] > 0.1 and v["frame_varying"] == pytest.approx(v["total"], rel=1e-5)


def test_needs_two_prompts_of_clip_shaped_means():
    with pytest.raises(InvalidInputError, match="prompts >= 2"):
        between_prompt_variance(torch.zeros(1, 4, 8, 5, 5))
    with pytest.raises(InvalidInputError, match="prompts >= 2"):
        between_prompt_variance(torch.zeros(3, 8, 5, 5))


@pytest.fixture(scope="module")
def shapes_wan():
    from motion_core.backbones import load_backbone
    from motion_core.toy.builtin import SHAPES_WAN_DIR

    return load_backbone(SHAPES_WAN_DIR, device="cpu")


@pytest.mark.slow
def test_the_worlds_motion_words_change_the_mean_clip_from_frame_to_frame(shapes_wan):
    means = torch.stack([true_mean(shapes_wan, "blue", m, clips=8) for m in ("left", "right")])
    v = between_prompt_variance(means)
    assert v["total"] > 0.005 and v["frame_varying"] > 0.9 * v["total"], v


@pytest.mark.slow
def test_the_first_step_estimate_is_an_average_over_noise_draws(shapes_wan):
    one = first_step_mean(shapes_wan, "blue", "left", draws=1)
    two = first_step_mean(shapes_wan, "blue", "left", draws=2)
    assert one.shape == (4, 9, 16, 16) and torch.isfinite(two).all()
    assert not torch.allclose(one, two)  # the second draw's estimate differs: it counts in the mean


def test_the_command_refuses_empty_counts():
    with pytest.raises(SystemExit, match="at least 1"):
        main(["--model", "shapes_wan", "--clips", "0"])


def test_text_spread_is_zero_for_equal_states_and_grows_with_their_difference():
    same = torch.randn(1, 16, 64).expand(4, -1, -1)
    assert relative_spread(same) == pytest.approx(0.0, abs=1e-9)
    apart = same.clone()
    apart[:, 5] += torch.randn(4, 64)  # one token's states differ, as for a one-word change
    more = same.clone()
    more[:, 5] += 3 * torch.randn(4, 64)
    assert 0 < relative_spread(apart) < relative_spread(more)
    with pytest.raises(InvalidInputError, match="at least 2 prompts"):
        relative_spread(same[:1])


def test_the_shipped_wan_text_encoder_tells_its_motion_words_apart(shapes_wan):
    assert text_separation(shapes_wan, [("blue", m) for m in ("left", "right", "up", "down")]) > 0.01
