"""Each recipe's loss terms equal hand computations on small tensors; samplers and caption rules as specified."""

import math

import pytest
import torch

from motion_core.errors import InvalidInputError
from motion_core.recipes import MotionCrafter, MotionDirector, get_recipe, losses, timesteps


def pair():
    # [B=1, C=1, F=3, h=1, w=2]
    pred = torch.tensor([[[[[1.0, 2.0]], [[3.0, 4.0]], [[5.0, 7.0]]]]])
    target = torch.tensor([[[[[1.0, 1.0]], [[2.0, 5.0]], [[4.0, 4.0]]]]])
    return pred, target


def test_mse_is_the_mean_over_all_elements():
    pred, target = pair()
    assert losses.mse(pred, target).item() == pytest.approx((0 + 1 + 1 + 1 + 1 + 9) / 6)


def test_motion_director_spatial_loss_compares_the_one_frame_prediction_with_the_chosen_frame():
    one_frame = torch.tensor([[[[[2.0, 2.0]]]]])
    _, target = pair()
    assert MotionDirector.spatial_loss(one_frame, target, 1).item() == pytest.approx((0 + 9) / 2)


def test_motion_director_debiased_term_matches_hand_computation_with_beta_one():
    pred, target = pair()
    a = math.sqrt(2.0)
    # anchor k = 0: pred anchor (1,2), target anchor (1,1)
    d = [(a * p - pk) - (a * t - tk) for p, t, pk, tk in [
        (1, 1, 1, 1), (2, 1, 2, 1), (3, 2, 1, 1), (4, 5, 2, 1), (5, 4, 1, 1), (7, 4, 2, 1)]]
    expected = sum(x * x for x in d) / 6
    terms = MotionDirector().temporal_terms(pred, target, anchor=0)
    assert terms["temporal_debiased"].item() == pytest.approx(expected, rel=1e-6)
    assert terms["temporal_mse"].item() == pytest.approx(13 / 6)


def test_vmc_cosine_loss_is_one_minus_mean_cosine_of_flattened_frame_residuals():
    pred, target = pair()
    r_hat = [(2.0, 2.0), (2.0, 3.0)]
    r = [(1.0, 4.0), (2.0, -1.0)]

    def cos(u, v):
        return (u[0] * v[0] + u[1] * v[1]) / math.hypot(*u) / math.hypot(*v)

    expected = 1 - (cos(r_hat[0], r[0]) + cos(r_hat[1], r[1])) / 2
    assert losses.vmc_motion_loss(pred, target).item() == pytest.approx(expected, rel=1e-6)
    l2 = sum((a - b) ** 2 for u, v in zip(r_hat, r) for a, b in zip(u, v)) / 4
    assert losses.vmc_motion_loss(pred, target, "l2").item() == pytest.approx(l2)


def test_vmc_abs_time_cosine_variant_takes_cosine_along_time_of_absolute_residuals():
    pred, target = pair()
    # per pixel, time vectors of |residuals|: pixel 0 pred (2,2) target (1,2); pixel 1 pred (2,3) target (4,1)
    c0 = (2 * 1 + 2 * 2) / math.hypot(2, 2) / math.hypot(1, 2)
    c1 = (2 * 4 + 3 * 1) / math.hypot(2, 3) / math.hypot(4, 1)
    value = losses.vmc_motion_loss(pred, target, "abs_time_cosine").item()
    assert value == pytest.approx(1 - (c0 + c1) / 2, rel=1e-6)
    with pytest.raises(InvalidInputError):
        losses.vmc_motion_loss(pred, target, "dot")


def test_motion_crafter_terms_split_motion_from_appearance():
    pred, target = pair()
    base = torch.zeros_like(pred)
    # frame means: pred (3, 13/3), target (7/3, 10/3)
    motion_pred = [-2, -7 / 3, 0, -1 / 3, 2, 8 / 3]
    motion_target = [-4 / 3, -7 / 3, -1 / 3, 5 / 3, 5 / 3, 2 / 3]
    motion = sum((a - b) ** 2 for a, b in zip(motion_pred, motion_target)) / 6
    appearance = (3 ** 2 + (13 / 3) ** 2) / 2
    terms = MotionCrafter(appearance_weight=0.5).loss_terms(pred, base, target)
    assert terms["motion"].item() == pytest.approx(motion, rel=1e-6)
    assert terms["appearance"].item() == pytest.approx(0.5 * appearance, rel=1e-6)


def test_skewed_timesteps_follow_t_power_k_minus_one_and_k_one_is_uniform():
    g = torch.Generator().manual_seed(0)
    t = timesteps.skewed(g, 1000, 20000, k=2.0).double()
    assert int(t.min()) >= 0 and int(t.max()) <= 999
    assert float(t.mean()) == pytest.approx(2 / 3 * 1000, rel=0.02)  # E[T·sqrt(u)] = 2T/3
    u = timesteps.skewed(torch.Generator().manual_seed(0), 1000, 20000, k=1.0).double()
    assert float(u.mean()) == pytest.approx(500, rel=0.03)


def test_newmove_caption_carries_the_trigger_once():
    recipe = get_recipe("newmove", trigger="V*")
    assert recipe.training_caption("a person dances", None) == "a person dances, V*"
    assert recipe.training_caption("a person does V* dance", None) == "a person does V* dance"
    assert recipe.training_caption("ignored", "someone moves") == "someone moves, V*"


def test_customize_a_video_splits_steps_into_absorber_then_motion():
    stages = get_recipe("customize_a_video").stages(10)
    assert [(s.name, s.steps) for s in stages] == [("absorber", 5), ("motion", 5)]


def test_motion_director_defaults_follow_the_paper_for_one_and_several_clips():
    config = get_recipe("motion_director").config
    assert (config.rank, config.lr, config.dropout, config.steps, config.weight_decay) == (32, 5e-4, 0.1, 150, 1e-2)
    several = config.for_clip_count(3)
    assert several.weight_decay == 1e-4 and 300 <= several.steps <= 500
    vmc = get_recipe("vmc").config
    assert (vmc.lr, vmc.steps, vmc.grad_clip) == (1e-4, 400, 1.0)


def test_unknown_recipe_or_option_names_the_choices():
    with pytest.raises(InvalidInputError, match="motion_director"):
        get_recipe("dreambooth")
    with pytest.raises(InvalidInputError, match="spatial_skip_probability"):
        get_recipe("motion_director", skip=0.5)
