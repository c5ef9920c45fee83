"""The two levers that let a one-shot MotionDirector LoRA carry a reference's path on the built-in model (issue #22):
training biased to high noise (`timestep_skew`, any recipe, set from the trainer) and the temporal convolutions in
MotionDirector's temporal LoRA. The quality tier measures what they do; these tests pin how they are wired."""

import math

import pytest
import torch
from test_recipe_support import clipset

from motion_core.backbones import tiny_animatediff_backbone, tiny_unet3d_backbone
from motion_core.errors import InvalidInputError
from motion_core.recipes import get_recipe
from motion_core.recipes import timesteps as laws
from motion_core.recipes.motion_crafter import MotionCrafter
from motion_core.recipes.motion_director import MotionDirector
from motion_core.training import TrainingConfig, train_motion_lora


def _draws(recipe, n=64, seed=3):
    generator = torch.Generator().manual_seed(seed)
    return recipe.sample_timesteps(generator, 1000, n)


def test_the_recipe_law_is_the_uniform_draw_itself_unless_a_skew_is_set():
    uniform = laws.uniform(torch.Generator().manual_seed(3), 1000, 64)
    assert torch.equal(_draws(get_recipe("motion_director")), uniform)  # runs replay as before the knob existed
    skewed = laws.skewed(torch.Generator().manual_seed(3), 1000, 64, 3.0)
    assert torch.equal(_draws(MotionDirector(timestep_skew=3.0)), skewed)
    assert torch.equal(_draws(get_recipe("newmove")), laws.skewed(torch.Generator().manual_seed(3), 1000, 64, 2.0))


def test_a_skew_of_three_puts_most_training_steps_at_high_noise():
    draws = _draws(MotionDirector(timestep_skew=3.0), n=4000).float()
    # density ∝ t², so P(t >= T/2) = 1 − 0.5³ = 0.875, against 0.5 for the uniform law
    assert (draws >= 500).float().mean().item() == pytest.approx(0.875, abs=0.03)


@pytest.mark.parametrize("skew", [0.0, -1.0, math.nan, math.inf])
def test_a_skew_that_is_not_a_positive_number_is_refused_before_training(skew):
    with pytest.raises(InvalidInputError, match="timestep_skew must be a positive number"):
        TrainingConfig(timestep_skew=skew).resolve(get_recipe("motion_director").config)


def test_the_trainer_config_sets_the_recipe_law_and_the_lora_records_it():
    backbone = tiny_unet3d_backbone(0)
    config = dict(steps=2, lr=1e-3, rank=2, width=16, height=16, frames=4, seed=0, gradient_checkpointing=False)
    skewed = train_motion_lora(backbone, clipset(), "motion_director", TrainingConfig(**config, timestep_skew=3.0))
    plain = train_motion_lora(backbone, clipset(), "motion_director", TrainingConfig(**config))
    assert skewed.motion_lora.metadata["extra"]["training"]["recipe_config"]["timestep_skew"] == 3.0
    assert plain.motion_lora.metadata["extra"]["training"]["recipe_config"]["timestep_skew"] == 1.0


def _temporal_sets(backbone, recipe, **options):
    specs = recipe(**options).adapters(backbone, 1, rank=2, alpha=2.0, dropout=0.0)
    return next(s for s in specs if s.name == "temporal").target_sets


@pytest.mark.parametrize("recipe", [MotionDirector, MotionCrafter])
def test_the_temporal_lora_covers_the_temporal_convolutions_where_the_family_has_them(recipe):
    unet3d = tiny_unet3d_backbone(0)
    assert "temporal_conv" in _temporal_sets(unet3d, recipe)
    assert "temporal_conv" not in _temporal_sets(unet3d, recipe, temporal_conv=False)  # attention (+ ff) only
    assert "temporal_conv" not in _temporal_sets(tiny_animatediff_backbone(0), recipe)  # AnimateDiff has none
