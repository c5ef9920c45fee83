"""The placement score of bench i2v (toy/placement.py) on clips drawn by the world's own renderer and read by the
tracker: a clip that starts at the start image's object is placed, one that starts at the reference's place is not
(and counts as nearer the reference), one that jumps away mid-clip is placed but not attached."""

import math

import torch

from motion_core.toy.base_stability import fastest_step
from motion_core.toy.motions import MotionParams
from motion_core.toy.placement import Placement, jump_limit, placement, summarize
from motion_core.toy.render import ClipSpec, render_frames
from motion_core.toy.tracking import track_object

torch.set_num_threads(1)
FRAMES = 9
TOLERANCE = fastest_step(FRAMES)


def _clip(x, y, motion="circle", colour="green", shape="triangle"):
    params = MotionParams(x, y, rate=1.0, amplitude=0.12) if motion == "circle" else MotionParams(x, y)
    spec = ClipSpec(colour, shape, motion, params, "black", 64, FRAMES, 8.0, seed=1, object_size=0.2)
    return render_frames(spec)


def _image_xy(x, y):
    track = track_object(_clip(x, y, "still")[:1], colour="green")
    return float(track.x[0]), float(track.y[0])


def test_the_tolerance_is_the_worlds_fastest_per_frame_move():
    assert math.isclose(TOLERANCE, 0.085, abs_tol=0.001)


def test_a_clip_starting_at_the_image_is_placed_and_one_starting_at_the_references_place_is_not():
    image, reference = _image_xy(0.3, 0.3), (0.7, 0.65)
    limit = jump_limit(TOLERANCE)
    # A circle's anchor is its centre: the first frame lies one radius from it, so start the path at the image.
    first = track_object(_clip(0.3, 0.3))
    offset = (image[0] - float(first.x[0]), image[1] - float(first.y[0]))
    here = placement(track_object(_clip(0.3 + offset[0], 0.3 + offset[1])), image, reference, TOLERANCE, limit)
    assert here.placed and here.attached and not here.nearer_reference and here.start_distance < 0.02
    there = placement(track_object(_clip(0.7 + offset[0], 0.65 + offset[1])), image, reference, TOLERANCE, limit)
    assert not there.placed and not there.attached and there.nearer_reference
    assert math.isclose(there.start_distance, math.hypot(0.4, 0.35), abs_tol=0.03)
    s = summarize([here, there])
    assert s["placed"] == 0.5 and s["attached"] == 0.5 and s["nearer_reference"] == 0.5
    assert math.isclose(s["start_distance"], (here.start_distance + there.start_distance) / 2)


def test_a_clip_that_jumps_away_after_its_first_frame_is_placed_but_not_attached():
    image = _image_xy(0.3, 0.3)
    frames = torch.cat([_clip(0.3, 0.3, "still")[:2], _clip(0.75, 0.75, "still")[2:]])
    p = placement(track_object(frames), image, (0.5, 0.5), TOLERANCE, jump_limit(TOLERANCE))
    assert p.placed and not p.attached


def test_no_object_in_the_first_frame_is_neither_placed_nor_counted_in_the_distance():
    frames = _clip(0.3, 0.3, "still")
    frames[0] = frames[0, :1, :1]  # the background colour everywhere
    p = placement(track_object(frames), _image_xy(0.3, 0.3), (0.5, 0.5), TOLERANCE, 1.0)
    assert not p.placed and math.isnan(p.start_distance)
    s = summarize([p, Placement(0.01, 0.4, True, True, False)])
    assert s["placed"] == 0.5 and s["start_distance"] == 0.01


def test_the_jump_limit_allows_a_held_out_motion_its_own_speed():
    fast = track_object(torch.cat([_clip(0.2, 0.2, "still")[:4], _clip(0.6, 0.2, "still")[4:]]))
    assert math.isclose(jump_limit(TOLERANCE), 1.5 * TOLERANCE)
    assert math.isclose(jump_limit(TOLERANCE, fast), 1.5 * 0.4, abs_tol=0.03)


def test_the_start_frame_score_reads_the_background_that_placement_cannot():
    """A clip opening on the picture keeps every pixel; one with the same object at the same place on another
    background passes placement (the object is where the picture has it) and keeps almost none of the frame."""
    from motion_core.toy.start_frame import start_frame_scores

    def clip(background):
        spec = ClipSpec("green", "triangle", "still", MotionParams(0.5, 0.5), background, 64, FRAMES, 8.0, seed=1,
                        object_size=0.2)
        return render_frames(spec)

    picture = clip("black")[0]
    same = start_frame_scores(clip("black"), picture)
    assert same == {"start_frame_error": 0.0, "start_frame_kept": 1.0}
    other_background = clip("grey")
    moved = start_frame_scores(other_background, picture)
    xy = _image_xy(0.5, 0.5)
    assert placement(track_object(other_background, colour="green"), xy, (0.1, 0.1), TOLERANCE,
                     jump_limit(TOLERANCE, track_object(other_background, colour="green"))).placed
    assert moved["start_frame_kept"] < 0.2 and moved["start_frame_error"] > 0.2
