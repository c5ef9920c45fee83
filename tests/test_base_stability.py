"""The frame-by-frame stability measure, specified on clips rendered by the world itself: a clean clip is found in
every frame, keeps its shape and moves no faster than the world allows; broken clips are caught."""

import random

import pytest
import torch

from motion_core.toy.base_stability import JUMP_TOLERANCE, clip_stability, fastest_step, summarize
from motion_core.toy.motions import BASIC_MOTIONS
from motion_core.toy.render import render_frames, sample_spec
from motion_core.toy.tracking import track_object

FRAMES = 9


def _clips(count: int, motions=BASIC_MOTIONS, seed: int = 3):
    rng = random.Random(seed)
    return [render_frames(sample_spec(rng, motions=motions, frames=FRAMES, size=64, fps=8.0, companion_probability=0.0))
            for _ in range(count)]


def test_the_fastest_step_is_the_longest_straight_move_spread_over_the_clip():
    # Straight moves travel at most 0.68 of the canvas over the clip: 8 steps between 9 frames.
    assert fastest_step(FRAMES) == pytest.approx(0.68 / (FRAMES - 1), abs=2e-3)


def test_rendered_clips_are_found_in_every_frame_keep_their_shape_and_move_within_the_limit():
    limit = JUMP_TOLERANCE * fastest_step(FRAMES)
    for frames in _clips(5):
        s = clip_stability(track_object(frames))
        assert s.found_every_frame and s.found_frames == FRAMES
        assert s.shape_kept == 1.0
        assert s.largest_jump <= limit
        assert s.size_ratio < 1.3  # rasterising a moving edge changes the pixel count by up to ~25%


def test_a_still_clip_does_not_jump():
    (frames,) = _clips(1, motions=("still",))
    assert clip_stability(track_object(frames)).largest_jump < 0.01


def test_an_object_that_teleports_between_neighbouring_frames_is_caught():
    (frames,) = _clips(1, motions=("right",), seed=5)
    order = [0, 8, 1, 7, 2, 6, 3, 5, 4]  # the same positions, visited out of order
    s = clip_stability(track_object(frames[order]))
    assert s.largest_jump > JUMP_TOLERANCE * fastest_step(FRAMES)


def test_a_frame_without_the_object_is_counted_as_lost():
    (frames,) = _clips(1, motions=("left",), seed=7)
    frames = frames.clone()
    frames[4] = frames[4].reshape(-1, 3).median(dim=0).values  # the frame's background colour only
    s = clip_stability(track_object(frames))
    assert not s.found_every_frame and s.found_frames == FRAMES - 1
    summary = summarize([{**s.__dict__}], fastest_step(FRAMES))
    assert summary["found_every_frame"] == 0.0 and summary["jump_within_limit"] == 0.0


def test_shape_kept_is_the_share_of_frames_showing_the_majority_shape():
    from motion_core.toy.render import ClipSpec
    from motion_core.toy.motions import MotionParams

    def clip(shape):
        return render_frames(ClipSpec("red", shape, "still", MotionParams(0.5, 0.5), frames=FRAMES, size=64))

    frames = torch.cat([clip("square")[:6], clip("circle")[:3]])
    s = clip_stability(track_object(frames))
    assert s.shape_kept == pytest.approx(6 / 9)
