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


def test_noise_prior_option_starts_every_sample_from_the_first_reference_clip(monkeypatch):
    from types import SimpleNamespace

    import torch

    from motion_core.bench import quality
    from motion_core.sampling import SampleResult

    seen = []

    def fake_sample(backbone, request):
        seen.append(request)
        blank = torch.zeros(request.frames, request.height, request.width, 3)
        return SampleResult(frames=blank, latents=torch.zeros(1), fps=request.fps, merge_count=0, seconds={})

    monkeypatch.setattr(quality, "sample_video", fake_sample)
    args = SimpleNamespace(prompts=2, seeds=1, sample_steps=3, cfg=5.0, seed=0, train_steps=1,
                           noise_prior_mode="motion")
    for p in (0.0, 0.4):
        seen.clear()
        args.noise_prior = p
        row = quality.evaluate(object(), quality.BASE, "zigzag", 2, args)
        assert row["samples"] == len(seen) == 2
        first = reference_clips("zigzag", 2, seed=0).clips[0]
        for request in seen:
            assert request.noise_prior_p == p and request.noise_prior_mode == "motion"
            if p:
                assert torch.equal(request.noise_prior_clip.frames, first.frames)
            else:
                assert request.noise_prior_clip is None
