"""ShapesT2V metrics: motion fidelity (against the reference clip: primary; per family: secondary), its chance
level, appearance accuracy, leakage."""

import dataclasses
import math
import random

import numpy as np
import pytest
import torch

from motion_core.toy import (
    HELD_OUT_MOTIONS, ClipSpec, MotionParams, appearance_accuracy, family_fidelity, leakage, motion_fidelity,
    render_frames, sample_spec, score_sample, summarize, track_object,
)
from motion_core.toy.captions import WORLD_WORDS, caption
from motion_core.toy.metrics import chance_pool, random_path_chance, random_world_paths, reference_fidelity
from motion_core.toy.motions import MOTIONS, UNSEEN_MOTIONS
from motion_core.toy.tracking import ObjectTrack


def _track(spec, sigma=0.0, seed=0):
    frames = render_frames(spec)
    if sigma:
        g = torch.Generator().manual_seed(seed)
        frames = (frames + torch.randn(frames.shape, generator=g) * sigma).clamp(0, 1)
    return track_object(frames)


@pytest.fixture(scope="module")
def held_out_tracks():
    """Three noisy members (random start, rate, phase, colour, shape) of each held-out family plus still."""
    rng = random.Random(5)
    families = list(HELD_OUT_MOTIONS) + ["still"]
    return {m: [_track(sample_spec(rng, motions=[m]), 0.05, i) for i in range(3)] for m in families}


def test_fidelity_of_a_reference_with_itself_is_one():
    track = _track(ClipSpec("blue", "circle", "zigzag", MotionParams(0.5, 0.4, 2.0, 0.1, 0.2)))
    assert motion_fidelity(track, track) == pytest.approx(1.0)


def test_fidelity_ignores_start_position_colour_shape_and_background():
    params = MotionParams(0.35, 0.4, 1.0, 0.3, 0.18)
    a = _track(ClipSpec("blue", "circle", "circle", params), 0.05, 1)
    moved = dataclasses.replace(params, x0=0.62, y0=0.58)
    b = _track(ClipSpec("yellow", "triangle", "circle", moved, background="texture"), 0.05, 2)
    assert motion_fidelity(b, a) >= 0.9


@pytest.mark.parametrize("motion", list(HELD_OUT_MOTIONS) + ["left", "down_right"])
def test_same_family_same_rate_different_start_scores_high(motion):
    rng = random.Random(motion)
    first = sample_spec(rng, motions=[motion])
    second = sample_spec(rng, motions=[motion])
    second = dataclasses.replace(second, motion=motion, params=dataclasses.replace(
        first.params, x0=second.params.x0, y0=second.params.y0), object_size=first.object_size)
    assert motion_fidelity(_track(second, 0.05, 1), _track(first, 0.05, 2)) >= 0.8


def test_still_object_against_moving_reference_scores_low_and_still_against_still_high(held_out_tracks):
    still = held_out_tracks["still"]
    for motion in HELD_OUT_MOTIONS:
        for moving in held_out_tracks[motion]:
            assert motion_fidelity(still[0], moving) <= 0.1
            assert motion_fidelity(moving, still[0]) <= 0.3
    assert motion_fidelity(still[0], still[1]) >= 0.7


def test_opposite_directions_score_zero():
    left = _track(ClipSpec("red", "square", "left", MotionParams(0.8, 0.5, 0.5)))
    right = _track(ClipSpec("red", "square", "right", MotionParams(0.2, 0.5, 0.5)))
    assert motion_fidelity(left, right) == 0.0


def test_fidelity_handles_different_frame_counts():
    params = MotionParams(0.5, 0.5, 1.0, 0.0, 0.2)
    a = _track(ClipSpec("red", "square", "circle", params, frames=16))
    b = _track(ClipSpec("red", "square", "circle", params, frames=12))
    assert motion_fidelity(b, a) >= 0.9


def test_held_out_family_fidelity_matrix_separates_families(held_out_tracks):
    families = list(held_out_tracks)
    matrix = np.array([[np.mean([family_fidelity(t, ref) for t in held_out_tracks[gen]]) for ref in families]
                       for gen in families])
    print("\nfamily fidelity (rows: generated family, columns: reference family)")
    print("            " + " ".join(f"{f:>11}" for f in families))
    for gen, row in zip(families, matrix):
        print(f"{gen:>11} " + " ".join(f"{v:11.2f}" for v in row))
    diagonal = np.diag(matrix)
    off = matrix[~np.eye(len(families), dtype=bool)]
    assert diagonal.min() >= 0.85
    assert off.max() <= 0.3


def test_appearance_accuracy_and_leakage_on_constructed_tracks():
    def fake(colour, shape):
        nan = torch.full((2,), math.nan)
        return ObjectTrack(nan, nan, nan, torch.ones(2, dtype=torch.bool), (shape, shape), colour, shape)

    assert appearance_accuracy(fake("red", "circle"), "red", "circle") == 1.0
    assert appearance_accuracy(fake("red", "square"), "red", "circle") == 0.0
    # Reference was a blue square; the prompt asked for a red circle.
    assert leakage(fake("red", "circle"), "blue", "square", "red", "circle") == 0.0
    assert leakage(fake("blue", "circle"), "blue", "square", "red", "circle") == 1.0
    assert leakage(fake("red", "square"), "blue", "square", "red", "circle") == 1.0
    # Prompt keeps the reference's shape: producing that shape is not leakage.
    assert leakage(fake("red", "square"), "blue", "square", "red", "square") == 0.0
    assert math.isnan(leakage(fake("blue", "square"), "blue", "square", "blue", "square"))


def test_score_and_summary_over_a_batch():
    reference = _track(ClipSpec("blue", "square", "bounce", MotionParams(0.5, 0.5, 2.5, 0.0, 0.4)))
    good = _track(ClipSpec("red", "circle", "bounce", MotionParams(0.3, 0.6, 2.5, 0.0, 0.4)))
    leaky = _track(ClipSpec("blue", "circle", "still", MotionParams(0.5, 0.5)))
    kwargs = dict(prompt_colour="red", prompt_shape="circle", reference=reference, motion="bounce",
                  reference_colour="blue", reference_shape="square")
    s_good, s_leaky = score_sample(good, **kwargs), score_sample(leaky, **kwargs)
    assert s_good.appearance_accuracy == 1.0 and s_good.leakage == 0.0 and s_good.motion_fidelity >= 0.95
    assert s_good.family_fidelity >= 0.9
    assert s_leaky.appearance_accuracy == 0.0 and s_leaky.leakage == 1.0 and s_leaky.motion_fidelity <= 0.1
    summary = summarize([s_good, s_leaky])
    assert summary["count"] == 2
    assert summary["appearance_accuracy"] == 0.5 and summary["leakage"] == 0.5 and summary["colour_accuracy"] == 0.5
    assert summary["shape_accuracy"] == 1.0


# The primary metric and its chance level (issue #22): the reference clip's own path, nothing searched.

@pytest.fixture(scope="module")
def reference_tracks():
    """One rendered, tracked reference clip per held-out family, as the quality bench makes them."""
    from motion_core.bench.quality import reference_clips
    return {m: track_object(reference_clips(m, 1, seed=0).clips[0].frames) for m in HELD_OUT_MOTIONS}


def test_reference_fidelity_of_the_reference_itself_is_one_and_ignores_look_and_start(reference_tracks):
    for motion, ref in reference_tracks.items():
        assert reference_fidelity(ref, ref) == pytest.approx(1.0), motion
    params = MotionParams(0.35, 0.4, 1.0, 0.3, 0.18)
    a = _track(ClipSpec("red", "square", "circle", params), 0.05, 1)
    b = _track(ClipSpec("green", "triangle", "circle", dataclasses.replace(params, x0=0.62, y0=0.58)), 0.05, 2)
    assert reference_fidelity(b, a) >= 0.9


def test_reference_fidelity_allows_another_frame_count_but_not_another_phase_or_rate():
    """Frames are resampled (a sampler may make more or fewer); phase and rate are the reference's motion."""
    params = MotionParams(0.5, 0.5, 1.0, 0.0, 0.2)
    ref = _track(ClipSpec("red", "square", "circle", params, frames=16))
    assert reference_fidelity(_track(ClipSpec("red", "square", "circle", params, frames=12)), ref) >= 0.9
    shifted = _track(ClipSpec("red", "square", "circle", dataclasses.replace(params, phase=0.5)))
    assert reference_fidelity(shifted, ref) <= 0.05  # half a cycle later the velocities are opposite
    assert family_fidelity(shifted, "circle") >= 0.9  # which the family score forgives


def test_with_several_references_the_best_of_those_clips_counts(reference_tracks):
    circle, zigzag = reference_tracks["circle"], reference_tracks["zigzag"]
    assert reference_fidelity(circle, [zigzag, circle]) == pytest.approx(1.0)
    assert reference_fidelity(circle, [zigzag]) == reference_fidelity(circle, zigzag)
    with pytest.raises(Exception):
        reference_fidelity(circle, [])


def test_random_paths_of_other_families_score_near_zero_against_the_reference(reference_tracks):
    for motion, ref in reference_tracks.items():
        paths = random_world_paths(motion, ref.num_frames, count=64, seed=0)
        scores = [reference_fidelity(p, ref) for p in paths]
        assert np.mean(scores) <= 0.08, (motion, np.mean(scores))
        assert random_path_chance(ref, motion) == pytest.approx(np.mean(scores))
        assert all(s < 0.9 for s in scores)


def test_random_world_paths_exclude_the_reference_family_and_are_seeded():
    a = random_world_paths("circle", 8, count=16, seed=3)
    assert all(np.array_equal(x, y) for x, y in zip(a, random_world_paths("circle", 8, count=16, seed=3)))
    assert max(family_fidelity(p, "circle") for p in a) < 0.9  # no circle among them


def test_family_max_rewards_random_wobble_so_it_is_not_the_primary_fidelity(reference_tracks):
    """Why family_fidelity is only a secondary column: random-walk paths (the kind of drift an untrained model makes)
    score ~0.2 on the best-of-48-members family score, about the base model's old README figure (0.20-0.26), but
    ~0.05-0.09 against the reference clip's own path. Measured here: family max 0.21-0.24, reference 0.05-0.09."""
    rs = np.random.default_rng(0)
    for motion in ("circle", "zigzag", "bounce"):
        ref = reference_tracks[motion]
        walks = []
        for _ in range(32):
            steps = rs.normal(0.0, 0.04, (ref.num_frames - 1, 3)) * [1.0, 1.0, 0.2]
            walks.append(np.vstack([np.zeros(3), np.cumsum(steps, axis=0)]) + [0.5, 0.5, -0.36])
        family = np.mean([family_fidelity(w, motion) for w in walks])
        own = np.mean([reference_fidelity(w, ref) for w in walks])
        assert family >= 0.15 and family >= own + 0.1, (motion, family, own)
        assert own <= 0.12, (motion, own)


@pytest.mark.parametrize("motion", UNSEEN_MOTIONS)
def test_unseen_families_are_tracked_scored_and_kept_out_of_earlier_figures(motion):
    """figure_eight and spiral (issue #22's motions of our own design): a rendered member is tracked back to itself
    from another start, random paths score near zero against it, and the families stay out of the held-out list,
    the chance pool and the tokenizer's unknown words, so adding them changed no earlier figure."""
    rng = random.Random(motion)
    first = sample_spec(rng, motions=[motion], frames=8)
    moved = dataclasses.replace(first, params=dataclasses.replace(first.params, x0=first.params.x0 + 0.01,
                                                                     y0=first.params.y0 - 0.01))
    assert motion_fidelity(_track(moved, 0.05, 1), _track(first, 0.05, 2)) >= 0.8
    assert random_path_chance(_track(first), motion) <= 0.1
    assert motion not in HELD_OUT_MOTIONS
    assert all(motion not in chance_pool(other) for other in MOTIONS)
    assert set(chance_pool("circle")) == set(MOTIONS) - {"circle", *UNSEEN_MOTIONS}
    assert set(caption("red", "square", motion).split()) <= set(WORLD_WORDS)
