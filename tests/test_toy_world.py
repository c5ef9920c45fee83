"""ShapesT2V world: rendering, motion families, captions."""

import random

import pytest
import torch

from motion_core.clips import Clip
from motion_core.errors import InvalidInputError
from motion_core.toy import (
    BACKGROUNDS, BASIC_MOTIONS, COLOURS, HELD_OUT_MOTIONS, MOTIONS, SHAPES, WORLD_WORDS, ClipSpec, Companion,
    MotionParams, render_clip, sample_spec,
)
from motion_core.toy.motions import get_motion


def test_render_is_deterministic_and_has_requested_size_and_frames():
    spec = sample_spec(random.Random(3), motions=["zigzag"], backgrounds=["texture"], frames=12, size=80)
    a, b = render_clip(spec), render_clip(spec)
    assert isinstance(a, Clip)
    assert a.frames.shape == (12, 80, 80, 3) and a.frames.dtype == torch.uint8
    assert torch.equal(a.frames, b.frames)
    assert a.caption == b.caption


def test_sample_spec_is_deterministic_for_a_seed():
    assert sample_spec(random.Random(7)) == sample_spec(random.Random(7))
    assert sample_spec(random.Random(7)) != sample_spec(random.Random(8))


def test_texture_depends_on_seed_and_plain_backgrounds_are_flat():
    base = dict(colour="red", shape="square", motion="still", background="texture")
    a = render_clip(ClipSpec(**base, seed=1)).frames
    b = render_clip(ClipSpec(**base, seed=2)).frames
    assert not torch.equal(a, b)
    plain = render_clip(ClipSpec("red", "square", "still", MotionParams(0.5, 0.5), background="grey")).frames
    corner = plain[:, :8, :8].reshape(-1, 3)
    assert (corner == corner[0]).all()


def test_caption_names_colour_shape_and_motion_phrase():
    spec = ClipSpec("blue", "circle", "left")
    assert render_clip(spec).caption == "a blue circle moves left"
    assert ClipSpec("red", "square", "bounce").text() == "a red square bounces"
    assert ClipSpec("red", "square", "zigzag", companion=Companion("green", "circle", 0.2, 0.2)).text() == (
        "a red square moves in a zigzag next to a green circle"
    )


def test_every_caption_word_is_in_the_world_vocabulary():
    for motion in MOTIONS:
        for colour in COLOURS:
            for shape in SHAPES:
                text = ClipSpec(colour, shape, motion, companion=Companion(colour, shape, 0.5, 0.5)).text()
                assert set(text.split()) <= set(WORLD_WORDS), text


def test_at_least_four_held_out_families_disjoint_from_pretraining():
    assert len(HELD_OUT_MOTIONS) >= 4
    assert {"zigzag", "circle", "bounce", "grow_shrink"} <= set(HELD_OUT_MOTIONS)
    assert not set(HELD_OUT_MOTIONS) & set(BASIC_MOTIONS)
    assert {"left", "right", "up", "down", "still"} <= set(BASIC_MOTIONS)
    phrases = [m.phrase for m in MOTIONS.values()]
    assert len(set(phrases)) == len(phrases)


@pytest.mark.parametrize("frames, min_step", [(16, 2.0), (8, 4.0)])
@pytest.mark.parametrize("motion", [m for m in MOTIONS if m != "still"])
def test_sampled_motions_stay_inside_and_move_several_pixels_per_frame(motion, frames, min_step):
    rng = random.Random(11)
    for _ in range(10):
        spec = sample_spec(rng, motions=[motion], frames=frames, size=64)
        xs, ys, scale = get_motion(motion).positions(spec.frames, spec.params)
        half = spec.object_size * scale / 2
        assert (xs - half >= 0).all() and (xs + half <= 1).all() and (ys - half >= 0).all() and (ys + half <= 1).all()
        # Mean per-frame change of position or of size (edge displacement), in pixels at 64 px.
        step = torch.stack([xs.diff(), ys.diff(), spec.object_size * scale.diff()]).norm(dim=0) * 64
        assert step.mean() >= min_step, (motion, float(step.mean()))


def test_members_of_a_family_differ():
    rng = random.Random(0)
    params = {sample_spec(rng, motions=["circle"]).params for _ in range(5)}
    assert len(params) == 5
    assert len({p.phase for p in params}) == 5


def test_companion_is_another_colour_and_shape():
    rng = random.Random(2)
    for _ in range(10):
        spec = sample_spec(rng, companion_probability=1.0)
        assert spec.companion is not None
        assert spec.companion.colour != spec.colour and spec.companion.shape != spec.shape


def test_unknown_names_are_clear_errors():
    with pytest.raises(InvalidInputError, match="colour"):
        render_clip(ClipSpec("teal", "square", "left"))
    with pytest.raises(InvalidInputError, match="shape"):
        render_clip(ClipSpec("red", "hexagon", "left"))
    with pytest.raises(InvalidInputError, match="motion"):
        render_clip(ClipSpec("red", "square", "spin"))
    with pytest.raises(InvalidInputError, match="background"):
        render_clip(ClipSpec("red", "square", "left", background="sky"))
    assert set(BACKGROUNDS) == {"black", "grey", "texture"}
