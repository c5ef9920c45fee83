"""ShapesT2V tracker: colour, shape and path recovered from pixels, also under noise and on textures."""

import itertools
import random

import torch

from motion_core.toy import COLOURS, SHAPES, ClipSpec, Companion, MotionParams, render_frames, sample_spec, track_object
from motion_core.toy.motions import get_motion


def _noisy(frames, sigma, seed):
    g = torch.Generator().manual_seed(seed)
    return (frames + torch.randn(frames.shape, generator=g) * sigma).clamp(0, 1)


def _accuracy(background, sigma):
    rng = random.Random(hash(background) % 1000)
    hits, errors = 0, []
    combos = list(itertools.product(COLOURS, SHAPES))
    for i, (colour, shape) in enumerate(combos):
        spec = sample_spec(rng, motions=["zigzag", "circle", "bounce", "grow_shrink", "left", "down_right"],
                           colours=[colour], shapes=[shape], backgrounds=[background], frames=8)
        track = track_object(_noisy(render_frames(spec), sigma, i))
        hits += track.colour == colour and track.shape == shape
        xs, ys, _ = get_motion(spec.motion).positions(spec.frames, spec.params)
        errors.append(float(((track.x - xs) ** 2 + (track.y - ys) ** 2).sqrt().nanmean()))
    return hits / len(combos), max(errors)


def test_tracker_recovers_colour_shape_and_centroid_on_plain_backgrounds():
    for background in ("black", "grey"):
        accuracy, worst = _accuracy(background, 0.0)
        assert accuracy == 1.0, background
        assert worst < 0.01, background  # < 0.64 px at 64 px


def test_tracker_is_robust_to_noise_on_all_backgrounds():
    for background in ("black", "grey", "texture"):
        accuracy, worst = _accuracy(background, 0.05)
        assert accuracy >= 0.95, (background, accuracy)
        assert worst < 0.015, (background, worst)


def test_uint8_clip_and_float_frames_give_the_same_track():
    spec = ClipSpec("yellow", "triangle", "circle", MotionParams(0.5, 0.5, 1.0, 0.2, 0.2), frames=8)
    from motion_core.toy import render_clip

    a, b = track_object(render_clip(spec)), track_object(render_clip(spec).frames.float() / 255)
    assert torch.allclose(a.x, b.x) and a.shape == b.shape == "triangle" and a.colour == "yellow"
    c = track_object(render_clip(spec).frames.numpy())  # imageio hands NumPy arrays
    assert torch.allclose(a.x, c.x) and c.shape == "triangle"


def test_tracker_measures_grow_shrink_as_area_change_in_place():
    spec = ClipSpec("white", "circle", "grow_shrink", MotionParams(0.5, 0.5, 1.0, 0.0, 0.4), frames=9,
                    background="texture")
    track = track_object(render_frames(spec))
    assert float(track.area.max() / track.area.min()) > 3.0  # (1.4 / 0.6)^2 ~ 5.4
    assert float(track.x.std()) < 0.005 and float(track.y.std()) < 0.005


def test_empty_frames_are_not_found_and_have_nan_positions():
    frames = torch.full((4, 64, 64, 3), 0.2)
    frames[2, 20:36, 20:36] = torch.tensor(COLOURS["blue"])
    track = track_object(frames)
    assert track.found.tolist() == [False, False, True, False]
    assert torch.isnan(track.x[0]) and not torch.isnan(track.x[2])
    assert track.colour == "blue" and track.shape == "square"
    nothing = track_object(torch.full((3, 32, 32, 3), 0.3))
    assert nothing.colour is None and nothing.shape is None and not nothing.found.any()


def test_dominant_object_and_colour_selection_with_two_objects():
    spec = ClipSpec("red", "circle", "left", MotionParams(0.8, 0.3, 0.5), frames=8, object_size=0.26,
                    companion=Companion("green", "square", 0.3, 0.75, 0.16))
    frames = render_frames(spec)
    dominant = track_object(frames)
    assert dominant.colour == "red" and dominant.shape == "circle"
    second = track_object(frames, colour="green")
    assert second.shape == "square"
    assert abs(float(second.x.mean()) - 0.3) < 0.01 and float(second.x.std()) < 0.002
