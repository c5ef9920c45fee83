"""Per-pixel leakage: red patches on a yellow object are seen (the majority vote misses them), a clean sample reads
zero, and the background is measured apart from the object."""

import math

import torch

from motion_core.toy import render_frames, score_sample, track_object
from motion_core.toy.motions import MotionParams
from motion_core.toy.palette import COLOURS
from motion_core.toy.pixel_leakage import pixel_leakage
from motion_core.toy.render import ClipSpec

RED = torch.tensor(COLOURS["red"])


def _yellow_square():
    return render_frames(ClipSpec("yellow", "square", "still", MotionParams(0.5, 0.5)))


def _object_box(frame):
    yellow = (frame - torch.tensor(COLOURS["yellow"])).norm(dim=-1) < 0.2
    ys, xs = torch.nonzero(yellow, as_tuple=True)
    return int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1


def test_a_clean_sample_has_no_pixel_leakage():
    leak = pixel_leakage(_yellow_square(), "red", "yellow")
    assert leak.object_share == 0.0 and leak.background_share == 0.0 and leak.worst_frame == 0.0


def test_red_patches_on_a_yellow_object_are_counted_where_the_majority_vote_sees_none():
    frames = _yellow_square()
    top, bottom, left, right = _object_box(frames[0])
    patched = frames.clone()
    for f in (1, 3):  # a quarter of the object red in two frames
        patched[f, top:(top + bottom) // 2, left:(left + right) // 2] = RED
    leak = pixel_leakage(patched, "red", "yellow")
    assert 0.15 < leak.worst_frame < 0.3  # a quarter of the square, its soft edge counted as object too
    assert 0.0 < leak.object_share < 0.1 and leak.background_share == 0.0
    score = score_sample(track_object(patched), "yellow", "square", reference_colour="red", reference_shape="circle",
                         frames=patched)
    assert score.leakage == 0.0 and score.pixel_leakage == leak.object_share


def test_reference_colour_in_the_background_is_the_background_share():
    frames = _yellow_square()
    frames[:, :4, :4] = RED  # a red corner away from the object
    leak = pixel_leakage(frames, "red", "yellow")
    assert leak.object_share == 0.0 and leak.background_share > 0.0


def test_undefined_when_the_prompt_asks_for_the_references_colour():
    assert math.isnan(pixel_leakage(_yellow_square(), "yellow", "yellow").object_share)


def _green_square_on_black():
    return render_frames(ClipSpec("green", "square", "still", MotionParams(0.5, 0.5), background="black"))


def test_dim_brownish_red_patches_as_generated_samples_show_them_are_counted():
    """Patches of (0.6, 0.3, 0.15) on a green square (what ShapesWan's samples show after a red reference): out of
    the tracker's RGB reach of the palette's red, plainly red-orange to a viewer."""
    frames = _green_square_on_black()
    green = (frames[0] - torch.tensor(COLOURS["green"])).norm(dim=-1) < 0.2
    ys, xs = torch.nonzero(green, as_tuple=True)
    top, bottom, left, right = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    patched = frames.clone()
    patched[:, top:(top + bottom) // 2, left:right] = torch.tensor([0.6, 0.3, 0.15])  # the top half of the object
    leak = pixel_leakage(patched, "red", "green")
    assert 0.3 < leak.object_share < 0.6 and leak.background_share == 0.0


def test_an_object_fading_into_a_dark_or_grey_background_is_not_leakage():
    """Edges blended with the background keep the object's hue: dimmed green and greyed yellow read zero."""
    frames = _green_square_on_black()
    dim = frames * 0.45  # the whole object at under half brightness, as a fading sample shows it
    assert pixel_leakage(dim, "red", "green").object_share == 0.0
    yellow = render_frames(ClipSpec("yellow", "square", "still", MotionParams(0.5, 0.5), background="grey"))
    greyed = 0.5 * yellow + 0.5 * torch.tensor([0.36, 0.36, 0.36])
    leak = pixel_leakage(greyed, "red", "yellow")
    assert leak.object_share == 0.0 and leak.background_share == 0.0


def test_pink_where_purple_and_yellow_blend_is_not_the_references_red():
    """The negative control: the base model (which never saw a red reference) blends a purple object with yellow
    into pinks such as (0.79, 0.48, 0.52) and (0.77, 0.44, 0.51); close to red's hue, too pale to be read as red."""
    frames = render_frames(ClipSpec("purple", "square", "still", MotionParams(0.5, 0.5), background="grey"))
    purple = (frames[0] - torch.tensor(COLOURS["purple"])).norm(dim=-1) < 0.2
    ys, xs = torch.nonzero(purple, as_tuple=True)
    top, bottom, left, right = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
    blended = frames.clone()
    blended[:, top:(top + bottom) // 2, left:right] = torch.tensor([0.79, 0.48, 0.52])
    blended[:, (top + bottom) // 2:bottom, left:right] = torch.tensor([0.77, 0.44, 0.51])
    assert pixel_leakage(blended, "red", "purple").object_share == 0.0
