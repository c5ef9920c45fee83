"""Each recipe sends gradients to exactly its intended adapters, path by path, and leaves everything else alone."""

import pytest
import torch
from test_recipe_support import clipset, probe_step, wave_clip

from motion_core.backbones import tiny_animatediff_backbone, tiny_unet3d_backbone
from motion_core.recipes import get_recipe


@pytest.fixture(scope="module")
def unet3d():
    return tiny_unet3d_backbone(0)


def test_motion_director_spatial_path_updates_only_the_spatial_lora_and_temporal_path_only_the_temporal(unet3d):
    recipe = get_recipe("motion_director", spatial_skip_probability=0.0)
    per_backward, changed, base_ok, terms = probe_step(unet3d, recipe, clipset())
    assert per_backward == [{"spatial_0"}, {"temporal"}]
    assert changed == {"spatial_0", "temporal"} and base_ok
    assert set(terms) == {"spatial", "temporal_mse", "temporal_debiased", "total"}


def test_motion_director_skipped_spatial_path_leaves_the_spatial_lora_bit_identical(unet3d):
    recipe = get_recipe("motion_director", spatial_skip_probability=1.0)
    per_backward, changed, base_ok, _ = probe_step(unet3d, recipe, clipset())
    assert per_backward == [{"temporal"}] and changed == {"temporal"} and base_ok


def test_motion_director_several_clips_train_only_the_current_clips_spatial_lora(unet3d):
    recipe = get_recipe("motion_director", spatial_skip_probability=0.0)
    clips = clipset(wave_clip(caption="a red wave"), wave_clip(caption="a blue wave", phase=-0.5))
    per_backward, changed, base_ok, _ = probe_step(unet3d, recipe, clips, clip_index=1)
    assert per_backward == [{"spatial_1"}, {"temporal"}]
    assert changed == {"spatial_1", "temporal"} and base_ok


@pytest.mark.parametrize("name, stage, expected", [
    ("vmc", "main", [{"temporal"}]),
    ("customize_a_video", "absorber", [{"absorber"}]),
    ("customize_a_video", "motion", [{"temporal"}]),
    ("motion_crafter", "main", [{"spatial", "temporal"}]),
    ("newmove", "main", [{"motion"}]),
    ("naive", "main", [{"motion"}]),
])
def test_only_the_intended_adapters_receive_gradients_and_change(unet3d, name, stage, expected):
    per_backward, changed, base_ok, terms = probe_step(unet3d, get_recipe(name), clipset(), stage=stage)
    assert per_backward == expected
    assert changed == set().union(*expected)
    assert base_ok and "total" in terms


def test_newmove_on_animatediff_falls_back_to_temporal_attention_without_temporal_convs():
    backbone = tiny_animatediff_backbone(0)
    spec = get_recipe("newmove").adapters(backbone, 1, rank=2, alpha=2.0, dropout=0.0)[0]
    assert spec.target_sets == ("temporal_attn", "spatial_cross_attn_kv")
    per_backward, changed, base_ok, _ = probe_step(backbone, get_recipe("newmove"), clipset())
    assert per_backward == [{"motion"}] and base_ok


def test_customize_a_video_absorber_in_chunks_has_the_same_loss_as_in_one_batch(unet3d, monkeypatch):
    """Frames go through the absorber in chunks when clips x latent pixels would be too large a batch for CUDA
    attention (it failed on an H100 at 512x512 px); the chunks' weighted losses must add up to the one-batch loss."""
    from motion_core.recipes import customize_a_video

    recipe = get_recipe("customize_a_video")
    *_, whole = probe_step(unet3d, recipe, clipset(), stage="absorber")
    monkeypatch.setattr(customize_a_video, "MAX_TEMPORAL_BATCH", 8 * 8)  # 16x16 px -> 8x8 latents: 1 frame a chunk
    per_backward, changed, base_ok, chunked = probe_step(unet3d, recipe, clipset(), stage="absorber")
    assert len(per_backward) == 4 and all(p == {"absorber"} for p in per_backward)
    assert torch.allclose(chunked["total"], whole["total"], rtol=1e-5)
    assert changed == {"absorber"} and base_ok


def test_frame_chunks_cover_every_frame_once_within_the_limit():
    from motion_core.recipes.customize_a_video import MAX_TEMPORAL_BATCH, frame_chunks

    chunks = frame_chunks(18, 64 * 64)
    assert [c.stop - c.start for c in chunks] == [4, 4, 4, 4, 2]
    assert all((c.stop - c.start) * 64 * 64 <= MAX_TEMPORAL_BATCH for c in chunks)
    assert frame_chunks(3, 10**6) == [slice(0, 1), slice(1, 2), slice(2, 3)]
