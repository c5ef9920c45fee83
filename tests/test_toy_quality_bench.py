"""The quality benchmark's set-up measures what it claims: one reference appearance, other prompted looks."""

from motion_core.bench.quality import REFERENCE_COLOUR, REFERENCE_SHAPE, other_appearances, reference_clips
from motion_core.toy.metrics import family_fidelity
from motion_core.toy.tracking import track_object


def test_reference_clips_are_distinct_members_of_one_family_with_one_appearance():
    clips = reference_clips("bounce", 3, seed=0)
    assert len(clips) == 3
    tracks = [track_object(c.frames) for c in clips]
    assert {(t.colour, t.shape) for t in tracks} == {(REFERENCE_COLOUR, REFERENCE_SHAPE)}
    assert all(family_fidelity(t, "bounce") > 0.8 for t in tracks)
    assert len({c.frames.sum().item() for c in clips}) == 3
    assert all(c.caption == "a red square bounces" for c in clips)


def test_prompted_appearances_differ_from_the_reference_in_colour_and_shape():
    pairs = other_appearances(5, seed=1)
    assert len(pairs) == len(set(pairs)) == 5
    assert all(c != REFERENCE_COLOUR and s != REFERENCE_SHAPE for c, s in pairs)
