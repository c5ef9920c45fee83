"""Image-to-video training levers beyond recolour: copies of the clip moved as a whole (shift_copies) and steps
trained with no start image shown (start_image_dropout). Each option is validated, does what it says to the data
the model sees, and leaves seeded runs reproducible."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from motion_core.backbones.wan.tiny import tiny_wan_i2v_backbone
from motion_core.clips import Clip, ClipSet
from motion_core.errors import InvalidInputError
from motion_core.recipes import get_recipe
from motion_core.training import TrainingConfig, train_motion_lora
from motion_core.training.data import cache_samples
from motion_core.video.shift import shift_clip, shift_offsets

torch.set_num_threads(1)
FRAMES, SIZE = 5, 16


@pytest.fixture(scope="module")
def concat():
    return tiny_wan_i2v_backbone(0, kind="concat")


def _clips(seed=7):
    frames = (np.random.default_rng(seed).random((FRAMES, SIZE, SIZE, 3)) * 255).astype(np.uint8)
    return ClipSet([Clip(torch.from_numpy(frames), fps=8.0, caption="a square moving")])


def _config(**levers):
    return TrainingConfig(steps=levers.pop("steps", 2), width=SIZE, height=SIZE, frames=FRAMES, rank=2, lr=1e-3,
                          **levers)


@pytest.mark.parametrize("levers,named", [
    ({"shift_copies": -1}, "shift_copies"), ({"shift_copies": 9}, "shift_copies"),
    ({"shift_copies": 1.5}, "shift_copies"), ({"shift_copies": True}, "shift_copies"),
    ({"start_image_dropout": 1.0}, "start_image_dropout"), ({"start_image_dropout": -0.1}, "start_image_dropout"),
    ({"start_image_dropout": float("nan")}, "start_image_dropout"),
    ({"start_image_dropout": "0.3"}, "start_image_dropout"),
])
def test_each_lever_refuses_a_bad_value_and_names_it(concat, levers, named):
    with pytest.raises(InvalidInputError, match=named):
        train_motion_lora(concat, _clips(), "naive", _config(**levers))


def test_a_shift_moves_every_frame_by_the_same_offset_and_fills_from_the_edge():
    frames = torch.zeros(4, 12, 10, 3)
    for f in range(4):
        frames[f, 3 + f, 2 + f] = 1.0  # a dot moving diagonally
    frames[:, :, 0] = 0.25  # a left edge column, to see the fill
    moved = shift_clip(frames, 3, -2)
    assert moved.shape == frames.shape and moved.dtype == frames.dtype
    for f in range(4):
        assert moved[f, 1 + f, 5 + f].tolist() == [1.0, 1.0, 1.0]
        assert float(moved[f].sum() - moved[f, :, :4].sum()) == pytest.approx(3.0)  # only the dot right of the fill
    # the uncovered left border repeats the edge column, the bottom rows the last row; nothing wraps around
    rows = torch.arange(12).add(2).clamp(max=11)  # moved up by 2: the last rows repeat the bottom one
    assert torch.equal(moved[:, :, :4], frames[:, rows, :1].expand(-1, -1, 4, -1))
    assert torch.equal(moved[:, -2:], moved[:, -3:-2].expand(-1, 2, -1, -1))
    assert torch.equal(shift_clip(frames, 0, 0), frames)


def test_shift_offsets_spread_in_direction_at_one_eighth_of_the_frame():
    offsets = shift_offsets(4, 64, 64)
    assert sorted(offsets) == [(-6, -6), (-6, 6), (6, -6), (6, 6)]
    assert len(set(shift_offsets(8, 64, 48))) == 8 and shift_offsets(0, 64, 64) == []


def test_shift_copies_train_beside_the_clip_each_from_its_own_first_frame(concat):
    recipe = get_recipe("naive")
    samples = cache_samples(concat, recipe, _clips(), frames=FRAMES, width=SIZE, height=SIZE, recolour=1,
                            shift_copies=2)
    assert len(samples) == (1 + 2) * (1 + 1) and {s.clip_index for s in samples} == {0}
    assert all(s.latents.shape == samples[0].latents.shape for s in samples)
    video = _clips().clips[0].frames.float() / 255
    dx, dy = shift_offsets(2, SIZE, SIZE)[0]
    expected = concat.encode_start_image(shift_clip(video, dx, dy)[0], FRAMES, SIZE, SIZE)
    assert torch.allclose(samples[2].condition.latents, expected.latents)
    assert torch.allclose(samples[2].latents, concat.encode_video(shift_clip(video, dx, dy)).float())
    starts = [s.condition.latents for s in samples]
    assert all(not torch.equal(a, b) for i, a in enumerate(starts) for b in starts[i + 1:])
    plain = cache_samples(concat, recipe, _clips(), frames=FRAMES, width=SIZE, height=SIZE)
    assert len(plain) == 1 and torch.equal(plain[0].latents, samples[0].latents)


def test_the_no_image_condition_is_what_single_frame_paths_see():
    for kind in ("concat", "clip"):
        backbone = tiny_wan_i2v_backbone(0, kind=kind)
        image = torch.rand(SIZE, SIZE, 3, generator=torch.Generator().manual_seed(0))
        shown = backbone.encode_start_image(image, FRAMES, SIZE, SIZE)
        blank = backbone.without_image(shown)
        assert blank.latents.shape == shown.latents.shape and blank.latent_frames == shown.latent_frames
        assert float(blank.latents[:, : blank.mask_channels].abs().sum()) == 0.0
        assert torch.equal(blank.latents, shown.blank(shown.latent_frames))  # the gray frames' latent everywhere
        assert blank.image_embeds is shown.image_embeds
    ti2v = tiny_wan_i2v_backbone(0, kind="first_frame")
    assert ti2v.without_image(ti2v.encode_start_image(image, FRAMES, SIZE, SIZE)) is None


def _train_and_watch(backbone, monkeypatch, **levers):
    """Train naive (one prediction a step) and record, per step, whether the start image was shown."""
    seen = []
    conditioned = type(backbone).conditioned

    def spy(self, condition):
        if condition is not None:
            seen.append(bool(condition.latents[:, : condition.mask_channels].abs().sum() > 0))
        return conditioned(self, condition)

    monkeypatch.setattr(type(backbone), "conditioned", spy)
    result = train_motion_lora(backbone, _clips(), "naive", _config(steps=16, **levers))
    monkeypatch.undo()
    return seen, result


def test_start_image_dropout_trains_some_steps_with_no_start_image_and_replays_exactly(concat, monkeypatch):
    never, _ = _train_and_watch(concat, monkeypatch)
    assert never and all(never)
    seen, result = _train_and_watch(concat, monkeypatch, start_image_dropout=0.5, seed=3)
    assert 0 < seen.count(False) < len(seen), seen
    again, repeat = _train_and_watch(concat, monkeypatch, start_image_dropout=0.5, seed=3)
    assert again == seen
    assert all(torch.equal(result.motion_lora.tensors[k], repeat.motion_lora.tensors[k])
               for k in result.motion_lora.tensors)


def test_a_shifted_copy_gets_det_trajectories_of_its_own_moved_clip(concat):
    from motion_core.training.data import add_clip_extras, prepare_frames

    recipe = get_recipe("det")
    clips = _clips()
    samples = cache_samples(concat, recipe, clips, frames=FRAMES, width=SIZE, height=SIZE, recolour=1, shift_copies=1)
    add_clip_extras(concat, recipe, clips, samples, frames=FRAMES, width=SIZE, height=SIZE)
    (key,) = samples[0].extras
    offset = shift_offsets(1, SIZE, SIZE)[0]
    moved = shift_clip(prepare_frames(clips.clips[0], FRAMES, SIZE, SIZE), *offset)
    expected = recipe.clip_extras(concat, moved, samples[2].latents)[key]
    assert samples[2].offset == offset and torch.equal(samples[2].extras[key].targets, expected.targets)
    assert samples[1].extras[key] is samples[0].extras[key]  # the recoloured copy shares its clip's geometry
    assert not torch.equal(samples[2].extras[key].targets, samples[0].extras[key].targets)
