"""The quality benchmark's set-up measures what it claims: one reference appearance, other prompted looks."""

import pytest

from motion_core.bench.quality import (
    BASE, REFERENCE_COLOUR, REFERENCE_SHAPE, add_base_chance, other_appearances, reference_clips,
)
from motion_core.toy.metrics import family_fidelity, random_path_chance, reference_fidelity
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
        (row,) = quality.evaluate(SimpleNamespace(check_video_frames=lambda n: None), quality.BASE, "zigzag", 2, args)
        assert row["samples"] == len(seen) == 2
        # Blank frames: nothing tracked, so no motion can be confirmed; the chance level is still measured.
        assert row["fidelity"] == 0.0 and row["sample_fidelity"] == [0.0, 0.0]
        assert 0.0 <= row["chance_random"] <= 0.1
        first = reference_clips("zigzag", 2, seed=0).clips[0]
        for request in seen:
            assert request.noise_prior_p == p and request.noise_prior_mode == "motion"
            if p:
                assert torch.equal(request.noise_prior_clip.frames, first.frames)
            else:
                assert request.noise_prior_clip is None


def test_the_primary_fidelity_ranks_each_reference_clip_at_one_and_random_paths_near_chance():
    """On the bench's own data: a perfect copy of a reference clip's motion scores 1, arbitrary motions of the world
    score near 0, so any figure in between is read against these two ends."""
    for motion in ("zigzag", "circle", "bounce", "grow_shrink"):
        tracks = [track_object(c.frames) for c in reference_clips(motion, 3, seed=0)]
        for t in tracks:
            assert reference_fidelity(t, tracks) == pytest.approx(1.0)
        assert random_path_chance(tracks[:1], motion) <= 0.08
        assert random_path_chance(tracks, motion) <= 0.15  # best of three clips lifts chance a little


def test_every_row_gets_the_base_model_of_its_family_and_shots_as_its_control():
    rows = [{"recipe": BASE, "motion": "circle", "shots": 1, "fidelity": 0.1},
            {"recipe": "newmove", "motion": "circle", "shots": 1, "fidelity": 0.4},
            {"recipe": "newmove", "motion": "circle", "shots": 3, "fidelity": 0.5}]
    add_base_chance(rows)
    assert rows[0]["chance_base"] == 0.1 and rows[0]["gain_over_base"] == 0.0
    assert rows[1]["chance_base"] == 0.1 and rows[1]["gain_over_base"] == pytest.approx(0.3)
    assert rows[2]["chance_base"] is None and rows[2]["gain_over_base"] is None


def _out_of_world(tokenizer, prompt: str, max_tokens: int) -> list[str]:
    """The words of `prompt` that the built-in tokenizer splits (unknown to it), and a note if the prompt is cut."""
    problems = [w for w in prompt.replace(",", " ").split() if len(tokenizer.tokenize(w)) != 1]
    if len(tokenizer(prompt).input_ids) > max_tokens:
        problems.append("cut")
    return problems


@pytest.mark.parametrize("model", ["shapes_t2v", "shapes_wan"])
def test_motion_crafter_prior_captions_in_the_bench_stay_inside_the_built_in_vocabulary(model):
    from transformers import AutoTokenizer

    from motion_core.bench.quality import world_recipe
    from motion_core.recipes import get_recipe
    from motion_core.toy.builtin import BUILTIN_MODELS
    from motion_core.toy.captions import caption
    from motion_core.toy.motions import HELD_OUT_MOTIONS
    from motion_core.toy.pretrain.wan_architecture import WAN_MAX_TOKENS

    tokenizer = AutoTokenizer.from_pretrained(BUILTIN_MODELS[model] / "tokenizer")
    limit = tokenizer.model_max_length if model == "shapes_t2v" else WAN_MAX_TOKENS
    references = [caption(REFERENCE_COLOUR, REFERENCE_SHAPE, m) for m in HELD_OUT_MOTIONS]
    bench_prompts = [p for r in references for p in world_recipe("motion_crafter").extra_prompts(r).values()]
    assert bench_prompts and all(_out_of_world(tokenizer, p, limit) == [] for p in bench_prompts)
    # The recipe's general defaults ("a green person, ...") are what the bench must not feed a toy model.
    default_prompts = [p for r in references for p in get_recipe("motion_crafter").extra_prompts(r).values()]
    assert any(_out_of_world(tokenizer, p, limit) for p in default_prompts)


def test_from_loras_scores_the_saved_lora_instead_of_training_and_names_a_missing_file(monkeypatch, tmp_path):
    from types import SimpleNamespace

    import torch

    from motion_core.bench import quality
    from motion_core.errors import InvalidInputError
    from motion_core.lora import MotionLora, save_lora
    from motion_core.sampling import SampleResult

    seen = []

    def fake_sample(backbone, request):
        seen.append(request)
        blank = torch.zeros(request.frames, request.height, request.width, 3)
        return SampleResult(frames=blank, latents=torch.zeros(1), fps=request.fps, merge_count=0, seconds={})

    def no_training(*a, **k):
        raise AssertionError("--from-loras must not train")

    monkeypatch.setattr(quality, "sample_video", fake_sample)
    monkeypatch.setattr(quality, "train_motion_lora", no_training)
    saved = MotionLora({"unet.a.lora_A.weight": torch.ones(2, 4), "unet.a.lora_B.weight": torch.ones(4, 2)},
                       {"name": "kept", "family": "unet3d"})
    save_lora(saved, tmp_path / "det_tracking_weight_0_zigzag_1.safetensors")
    args = SimpleNamespace(prompts=1, seeds=1, sample_steps=2, cfg=5.0, seed=0, train_steps=1, noise_prior=0.0,
                           noise_prior_mode="full", from_loras=str(tmp_path), save_loras="", lora_part=False)
    backbone = SimpleNamespace(check_video_frames=lambda n: None)
    (row,) = quality.evaluate(backbone, "det:tracking_weight=0", "zigzag", 1, args)
    (entry,) = seen[0].lora_stack
    assert entry.lora.metadata["name"] == "kept" and row["train_s"] == 0.0
    with pytest.raises(InvalidInputError, match="det_bounce_1.safetensors is missing.*det_tracking_weight_0_zigzag"):
        quality.evaluate(backbone, "det", "bounce", 1, args)


def test_lora_end_gives_each_saved_lora_one_row_per_end_share_with_and_without_its_kernel(monkeypatch, tmp_path):
    """--lora-end with --from-loras and --lora-part: one row per end share and variant, each sampled with the LoRA on
    steps 0..end only; 1.0 keeps the plain names, the base model one row whatever the shares."""
    from types import SimpleNamespace

    import torch

    from motion_core.bench import quality
    from motion_core.lora import MotionLora, save_lora
    from motion_core.sampling import SampleResult

    seen = []

    def fake_sample(backbone, request):
        seen.append(request.lora_stack)
        blank = torch.zeros(request.frames, request.height, request.width, 3)
        return SampleResult(frames=blank, latents=torch.zeros(1), fps=request.fps, merge_count=0, seconds={})

    monkeypatch.setattr(quality, "sample_video", fake_sample)
    kernel = {"temporal_kernel.blocks.0.down.weight": torch.ones(2, 4, 3),
              "temporal_kernel.blocks.0.up.weight": torch.zeros(4, 2, 3)}
    saved = MotionLora({"unet.a.lora_A.weight": torch.ones(2, 4), "unet.a.lora_B.weight": torch.ones(4, 2)},
                       {"name": "kept", "family": "wan", "temporal_kernel": {"rank": 2, "size": 3}}, kernel=kernel)
    save_lora(saved, tmp_path / "det_zigzag_1.safetensors")
    args = SimpleNamespace(prompts=1, seeds=1, sample_steps=2, cfg=5.0, seed=0, train_steps=1, noise_prior=0.0,
                           noise_prior_mode="full", from_loras=str(tmp_path), save_loras="", lora_part=True,
                           lora_end=quality.lora_ends("1.0,0.6,0.25"))
    backbone = SimpleNamespace(check_video_frames=lambda n: None)
    rows = quality.evaluate(backbone, "det", "zigzag", 1, args)
    assert [r["recipe"] for r in rows] == [
        "det", "det (LoRA part only)", "det (steps 0-60%)", "det (LoRA part only, steps 0-60%)",
        "det (steps 0-25%)", "det (LoRA part only, steps 0-25%)"]
    assert [r["lora_end"] for r in rows] == [1.0, 1.0, 0.6, 0.6, 0.25, 0.25]
    entries = [stack[0] for stack in seen]
    assert [(e.start_percent, e.end_percent, e.strength) for e in entries] == [
        (0.0, end, 1.0) for end in (1.0, 1.0, 0.6, 0.6, 0.25, 0.25)]
    assert [bool(e.lora.kernel) for e in entries] == [True, False] * 3
    (base,) = quality.evaluate(backbone, quality.BASE, "zigzag", 1, args)
    assert base["recipe"] == "base" and base["lora_end"] is None and len(seen[-1]) == 0


@pytest.mark.parametrize("text, message", [("1.0,0", "0 < end <= 1"), ("1.5", "0 < end <= 1"), ("nan", "0 < end"),
                                           ("0.5,half", "'half' is not a number"), ("0.5,0.5", "given twice")])
def test_lora_end_refuses_shares_outside_0_to_1_with_a_clear_error(text, message, capsys):
    from motion_core.bench import quality
    from motion_core.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match=message):
        quality.lora_ends(text)
    with pytest.raises(SystemExit):  # before any model is loaded
        quality.run(["--lora-end", text, "--model", "no_such_model"])
    assert "--lora-end" in capsys.readouterr().err
    assert quality.lora_ends("1.0,0.7,0.5,0.3") == (1.0, 0.7, 0.5, 0.3) and quality.lora_ends("") == (1.0,)
