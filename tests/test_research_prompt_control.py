"""prompt_control splits where sampled objects go between the prompt's motion words and the starting noise."""

import numpy as np
import pytest
import torch

from motion_core.errors import InvalidInputError
from motion_core.research.prompt_control import mean_velocity, prompt_share
from motion_core.toy.tracking import ObjectTrack

DIRECTIONS = np.array([[-0.5, 0.0], [0.5, 0.0], [0.0, -0.5], [0.0, 0.5]])  # left, right, up, down


def _track(xs, ys):
    xs, ys = torch.tensor(xs, dtype=torch.float32), torch.tensor(ys, dtype=torch.float32)
    found = ~torch.isnan(xs)
    return ObjectTrack(x=xs, y=ys, area=torch.full_like(xs, 0.05), found=found,
                       frame_shapes=tuple("circle" if f else None for f in found), colour="blue", shape="circle")


def test_mean_velocity_is_the_whole_clip_displacement_and_bridges_missed_frames():
    nan = float("nan")
    xs = [0.2 + 0.1 * i for i in range(8)]
    np.testing.assert_allclose(mean_velocity(_track(xs, [0.5] * 8)), [0.7, 0.0], atol=1e-6)
    gappy = [nan, 0.3, 0.4, nan, 0.6, 0.7, 0.8, nan]
    np.testing.assert_allclose(mean_velocity(_track(gappy, [0.5] * 8)), [0.7, 0.0], atol=1e-6)
    assert np.isnan(mean_velocity(_track([nan] * 7 + [0.5], [0.5] * 8))).all()


def test_prompt_share_is_one_when_words_set_the_path_and_zero_when_the_noise_does():
    rng = np.random.default_rng(0)
    by_prompt = np.stack([DIRECTIONS + 0.01 * rng.standard_normal((4, 2)) for _ in range(5)])
    assert prompt_share(by_prompt)["prompt_share"] > 0.99
    noise_paths = rng.standard_normal((5, 2)) * 0.5
    by_seed = np.stack([np.tile(noise_paths[s], (4, 1)) + 0.01 * rng.standard_normal((4, 2)) for s in range(5)])
    assert prompt_share(by_seed)["prompt_share"] < 0.01


def test_prompt_share_skips_untracked_samples_and_refuses_too_few():
    v = np.stack([DIRECTIONS.copy() for _ in range(3)])
    v[0, 1] = np.nan
    result = prompt_share(v)
    assert result["tracked"] == pytest.approx(11 / 12) and result["prompt_share"] > 0.99
    with pytest.raises(InvalidInputError, match="seeds >= 2"):
        prompt_share(v[:1])
    with pytest.raises(InvalidInputError, match="Too few tracked"):
        prompt_share(np.full((3, 4, 2), np.nan))
