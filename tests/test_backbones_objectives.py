"""Training objectives: the forward process, the target and the clean estimate of each family, by hand."""

import pytest
import torch
from diffusers import DDPMScheduler

from motion_core.backbones.objectives import DiffusionObjective, FlowMatchObjective
from motion_core.errors import InvalidInputError
from motion_core.recipes import timesteps as laws


def _pair(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 4, 3, 4, 4, generator=g), torch.randn(2, 4, 3, 4, 4, generator=g)


def test_flow_matching_noises_linearly_and_targets_noise_minus_clean():
    clean, noise = _pair()
    objective = FlowMatchObjective(shift=1.0)
    t = torch.tensor([250.0, 900.0])
    noisy = objective.add_noise(clean, noise, t)
    assert torch.allclose(noisy[0], 0.75 * clean[0] + 0.25 * noise[0], atol=1e-6)
    assert torch.allclose(noisy[1], 0.1 * clean[1] + 0.9 * noise[1], atol=1e-6)
    target = objective.target(clean, noise, t)
    assert torch.equal(target, noise - clean)
    assert torch.allclose(objective.clean_estimate(noisy, target, t), clean, atol=1e-5)


def test_flow_timesteps_follow_the_shift_and_keep_high_index_high_noise():
    objective = FlowMatchObjective(shift=3.0)
    index = torch.tensor([0, 499, 999])
    u = (index.double() + 1) / 1000
    expected = 3 * u / (1 + 2 * u) * 1000
    assert torch.allclose(objective.model_timesteps(index).double(), expected, atol=1e-3)
    assert float(objective.model_timesteps(torch.tensor([999]))) == pytest.approx(1000.0)
    # The shift moves the median draw towards high noise: u = 0.5 -> sigma = 0.75 at shift 3.
    assert float(objective.sigma(torch.tensor([499]))) == pytest.approx(0.75, abs=1e-3)


def test_skewed_law_favours_high_noise_under_flow_matching_too():
    objective = FlowMatchObjective(shift=1.0)
    g = torch.Generator().manual_seed(0)
    uniform = objective.sigma(laws.uniform(g, 1000, 4000)).mean()
    skewed = objective.sigma(laws.skewed(g, 1000, 4000, k=2.0)).mean()
    assert float(uniform) == pytest.approx(0.5, abs=0.03) and float(skewed) == pytest.approx(2 / 3, abs=0.03)


def test_an_expert_range_keeps_every_draw_on_its_side_of_the_boundary():
    high = FlowMatchObjective(shift=5.0, sigma_range=(0.875, 1.0))
    sigmas = high.sigma(torch.arange(1000))
    assert float(sigmas.min()) >= 0.875 and float(sigmas.max()) == pytest.approx(1.0)
    with pytest.raises(InvalidInputError, match="noise range"):
        FlowMatchObjective(sigma_range=(0.9, 0.5))
    with pytest.raises(InvalidInputError, match="shift"):
        FlowMatchObjective(shift=float("nan"))


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_ddpm_objective_matches_the_scheduler_and_inverts_its_prediction(prediction_type):
    scheduler = DDPMScheduler(num_train_timesteps=1000, prediction_type=prediction_type)
    objective = DiffusionObjective(scheduler)
    clean, noise = _pair(1)
    t = torch.tensor([10, 700])
    noisy = objective.add_noise(clean, noise, t)
    assert torch.equal(noisy, scheduler.add_noise(clean, noise, t))
    target = objective.target(clean, noise, t)
    expected = noise if prediction_type == "epsilon" else scheduler.get_velocity(clean, noise, t)
    assert torch.equal(target, expected)
    assert torch.equal(objective.model_timesteps(t), t)
    assert torch.allclose(objective.clean_estimate(noisy[1:], target[1:], 700), clean[1:], atol=1e-3)
