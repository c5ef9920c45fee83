"""DeT as a recipe: the dense tracking loss against hand-made features, the reference's trajectories against the
built-in world's known path, a seeded run that replays exactly with both adapters learning, and the temporal kernel
as MotionDirector's option."""

import pytest
import torch
from test_recipe_support import clipset, wave_clip

from motion_core.backbones.wan.tiny import tiny_wan_backbone
from motion_core.bench.quality import reference_clips
from motion_core.errors import InvalidInputError
from motion_core.lora.temporal_kernel import KernelSpec
from motion_core.recipes import get_recipe, losses
from motion_core.toy.tracking import track_object
from motion_core.training import TrainingConfig, train_motion_lora
from motion_core.video.trajectories import latent_frame_sources, latent_tracks

FAST = dict(rank=2, width=16, height=16, frames=5, gradient_checkpointing=False)


def _moving_pattern(frames=4, shift=1):
    """Features [1, 3, F, 8, 8] whose frame f is frame 0 moved ``shift`` cells right per frame (wrapping)."""
    base = torch.randn(1, 3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    return torch.cat([torch.roll(base, shifts=f * shift, dims=-1) for f in range(frames)], dim=2)


def _tracks(frames=4, shift=1):
    rows, cols = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    one = torch.stack([cols + shift, rows], dim=-1)
    visible = ((cols + shift) <= 7).float()  # the wrapped columns are not where the trajectory goes
    return one.expand(frames - 1, 8, 8, 2).clone(), visible.expand(frames - 1, 8, 8).clone()


def test_the_tracking_loss_is_zero_for_features_that_follow_the_trajectories():
    targets, visible = _tracks()
    assert losses.tracking_consistency(_moving_pattern(), targets, visible) < 1e-10


def test_the_tracking_loss_is_positive_for_features_that_do_not_follow_them():
    targets, visible = _tracks()
    still = _moving_pattern(shift=0)  # the pattern stays while the trajectories move
    assert losses.tracking_consistency(still, targets, visible) > 0.1
    wrong_way = _moving_pattern(shift=-1)
    assert losses.tracking_consistency(wrong_way, targets, visible) > 0.1


def test_the_tracking_loss_ignores_what_the_trajectories_do_not_see():
    targets, visible = _tracks()
    features = _moving_pattern()
    features[:, :, 3, :, 0] += 5.0  # the last frame's column 0 is reached only by hidden (wrapped) trajectories
    assert losses.tracking_consistency(features, targets, visible) < 1e-10
    assert losses.tracking_consistency(features, targets, torch.ones_like(visible)) > 0.1


def test_the_tracking_loss_refuses_trajectories_of_another_clip():
    targets, visible = _tracks(frames=3)
    with pytest.raises(InvalidInputError, match="do not fit"):
        losses.tracking_consistency(_moving_pattern(frames=4), targets, visible)


@pytest.mark.parametrize("motion", ["circle", "zigzag"])
def test_trajectories_from_the_flow_follow_the_built_in_worlds_object(motion):
    clip = reference_clips(motion, 1, 0, 9).clips[0]
    tracks = latent_tracks(clip.frames.float() / 255, (16, 16), 1)
    seen = track_object(clip.frames)
    for f in range(8):
        x0, y0 = float(seen.x[f]) * 16 - 0.5, float(seen.y[f]) * 16 - 0.5
        x1, y1 = float(seen.x[f + 1]) * 16 - 0.5, float(seen.y[f + 1]) * 16 - 0.5
        row, col = round(y0), round(x0)
        landed = tracks.targets[f, row, col]
        want = torch.tensor([col + x1 - x0, row + y1 - y0])
        assert tracks.visible[f, row, col] == 1.0
        assert (landed - want).norm() < 0.5, f"{motion} frame {f}: {landed.tolist()} vs {want.tolist()}"


def test_latent_frames_stand_for_the_last_frame_of_each_compressed_chunk():
    assert latent_frame_sources(9, 1) == list(range(9))
    assert latent_frame_sources(9, 4) == [0, 4, 8]
    with pytest.raises(InvalidInputError, match="1 \\+ 4"):
        latent_frame_sources(8, 4)


def _run(seed):
    recipe = get_recipe("det", tracking_share=1.0, kernel_rank=4)
    config = TrainingConfig(steps=3, lr=1e-2, seed=seed, name="wave", **FAST)
    return train_motion_lora(tiny_wan_backbone(0), clipset(wave_clip(frames=5, size=16)), recipe, config)


def test_a_seeded_det_run_replays_exactly_and_trains_both_the_lora_and_the_kernel():
    first, again, other = _run(0), _run(0), _run(1)
    a, b = first.motion_lora, again.motion_lora
    assert a.kernel and a.kernel_spec == KernelSpec(rank=4, size=3)
    assert all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)
    assert all(torch.equal(a.kernel[k], b.kernel[k]) for k in a.kernel)
    assert [h["total"] for h in first.history] == [h["total"] for h in again.history]
    assert all("tracking" in h for h in first.history)
    assert any(not torch.equal(a.kernel[k], other.motion_lora.kernel[k]) for k in a.kernel)
    ups = [t for k, t in a.kernel.items() if k.endswith(".up.weight")]  # zero at the start
    assert all(t.abs().sum() > 0 for t in ups)
    lora_b = [t for k, t in a.tensors.items() if k.endswith("lora_B.weight")]
    assert all(t.abs().sum() > 0 for t in lora_b)


def test_the_tracking_loss_acts_on_the_least_noisy_share_of_the_schedule():
    wan = tiny_wan_backbone(0)
    recipe = get_recipe("det")

    class Ctx:
        backbone, num_train_timesteps = wan, 1000
        sample = type("S", (), {"extras": {"det_tracks": object()}})()

    edge = float(wan.objective.model_timesteps(torch.tensor([399]))[0])
    assert recipe.tracking_applies(Ctx, torch.tensor([edge]))
    assert not recipe.tracking_applies(Ctx, torch.tensor([edge + 1.0]))
    assert not get_recipe("det", tracking_weight=0.0).tracking_applies(Ctx, torch.tensor([0.0]))


def test_det_options_are_checked():
    with pytest.raises(InvalidInputError, match="tracking_share"):
        get_recipe("det", tracking_share=0.0)
    with pytest.raises(InvalidInputError, match="tracking_weight"):
        get_recipe("det", tracking_weight=-1.0)
    with pytest.raises(InvalidInputError, match="odd number"):
        get_recipe("det", kernel_size=2)


def test_motion_director_carries_the_kernel_on_its_temporal_lora_only_when_asked():
    wan = tiny_wan_backbone(0)
    plain = get_recipe("motion_director").adapters(wan, 1, rank=2, alpha=2.0, dropout=0.0)
    kernel = get_recipe("motion_director", temporal_kernel=True).adapters(wan, 1, rank=2, alpha=2.0, dropout=0.0)
    assert [s.temporal_kernel for s in plain] == [None, None]
    assert [s.name for s in kernel if s.temporal_kernel is not None] == ["temporal"]


def test_the_memory_plan_counts_the_kernel_as_an_adapter():
    from motion_core.training.step_trace import trace_step

    wan = tiny_wan_backbone(0)
    shapes = wan.planning_shapes(5, 16, 16)

    def adapter_bytes(**options):
        return trace_step(wan, get_recipe("det", **options), shapes=shapes, checkpointing=True, rank=2, alpha=2.0,
                          dropout=0.0).adapter_bytes
    kernel = KernelSpec().parameters(128) * len(wan.denoiser.blocks) * 4  # float32
    assert adapter_bytes() - adapter_bytes(temporal_kernel=False) == kernel


def test_recipe_options_read_from_text_reach_the_recipe():
    from motion_core.recipes import parse_options

    options = parse_options(["temporal_kernel=true", "tracking_weight=0.25", "kernel_size=5"])
    recipe = get_recipe("det", **options)
    assert (recipe.config.kernel, recipe.config.tracking_weight) == (KernelSpec(128, 5), 0.25)
    with pytest.raises(InvalidInputError, match="key=value"):
        parse_options(["temporal_kernel"])
    with pytest.raises(InvalidInputError, match="no option"):
        get_recipe("motion_director", **parse_options(["tracking_weight=1"]))


def test_a_resumed_det_run_equals_an_uninterrupted_one_kernel_included(tmp_path):
    from motion_core.errors import CancelledError
    from motion_core.training import TrainingCallbacks

    wan, clips = tiny_wan_backbone(0), clipset(wave_clip(frames=5, size=16))
    recipe = get_recipe("det", tracking_share=1.0, kernel_rank=4)
    full = train_motion_lora(wan, clips, recipe, TrainingConfig(steps=4, lr=1e-2, seed=3, **FAST))
    stop = TrainingConfig(steps=4, lr=1e-2, seed=3, checkpoint_dir=str(tmp_path), **FAST)
    calls = []
    with pytest.raises(CancelledError):
        train_motion_lora(wan, clips, recipe, stop, TrainingCallbacks(should_cancel=lambda: len(calls) == 2,
                                                                      on_progress=calls.append))
    resumed = train_motion_lora(wan, clips, recipe, stop, resume_from=next(tmp_path.glob("*")))
    a, b = full.motion_lora, resumed.motion_lora
    assert a.kernel and all(torch.equal(a.kernel[k], b.kernel[k]) for k in a.kernel)
    assert all(torch.equal(a.tensors[k], b.tensors[k]) for k in a.tensors)
