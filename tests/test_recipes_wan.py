"""Every recipe on the Wan family (tiny random-init WanTransformer3DModel, AutoencoderKLWan, UMT5): flow-matching
loss terms equal hand computations, exactly the intended adapters learn, the loss falls, resume is bit-exact and
cancel writes a checkpoint. The recipes have no Wan branch: these tests prove the backbone's objective and target
sets carry them."""

import pytest
import torch
from test_recipe_support import base_snapshot, clipset, probe_step, wave_clip

from motion_core.backbones.wan.tiny import tiny_wan_backbone
from motion_core.errors import CancelledError, InvalidInputError
from motion_core.recipes import RECIPES, get_recipe, losses
from motion_core.training import TrainingCallbacks, TrainingConfig, train_motion_lora
from motion_core.training.context import StepContext
from motion_core.training.data import cache_samples
from motion_core.training.precision import Precision

FRAMES, SIZE = 5, 16  # Wan's causal VAE: 1 + 4k frames -> 2 latent frames
FAST = dict(rank=2, width=SIZE, height=SIZE, frames=FRAMES, gradient_checkpointing=False)


@pytest.fixture(scope="module")
def wan():
    return tiny_wan_backbone(0)


def wan_clip(**kw):
    return wave_clip(frames=FRAMES, size=SIZE, **kw)


def test_the_spatial_and_temporal_loras_of_motion_director_share_the_joint_self_attention(wan):
    spatial, temporal = get_recipe("motion_director").adapters(wan, 1, rank=2, alpha=2.0, dropout=0.0)
    attn = set(wan.target_modules("temporal_attn"))
    assert attn <= set(spatial.target_modules) and set(temporal.target_modules) == attn
    assert temporal.target_sets == ("temporal_attn",)
    assert set(spatial.target_modules) - attn == set(wan.target_modules("spatial_ff"))


def test_motion_crafter_spatial_lora_keeps_to_the_feed_forward_beside_the_temporal_lora(wan):
    spatial, temporal = get_recipe("motion_crafter").adapters(wan, 1, rank=2, alpha=2.0, dropout=0.0)
    assert spatial.target_sets == ("spatial_ff",)
    assert set(spatial.target_modules) == set(wan.target_modules("spatial_ff"))
    assert not set(spatial.target_modules) & set(temporal.target_modules)


def test_naive_lists_the_joint_attention_once(wan):
    (spec,) = get_recipe("naive").adapters(wan, 1, rank=2, alpha=2.0, dropout=0.0)
    assert len(spec.target_modules) == len(set(spec.target_modules))
    assert set(spec.target_modules) == set(wan.target_modules("temporal_attn")) | set(
        wan.target_modules("spatial_cross_attn"))


def test_single_frame_paths_train_on_frames_encoded_as_images(wan):
    (sample,) = cache_samples(wan, get_recipe("motion_director"), clipset(wan_clip()), frames=FRAMES, width=SIZE,
                              height=SIZE)
    assert sample.num_frames == 2 and sample.num_image_frames == FRAMES
    video = torch.stack([wan_clip().as_image()])
    assert torch.allclose(sample.image_latents[:, :, 3:4], wan.encode_video(video[:, 3:4]), atol=1e-5)


def test_motion_director_flow_terms_equal_a_hand_computation(wan):
    """Replay the step's draws (noise, σ index, skip draw, frame, frame noise, anchor) from the same generator and
    compute the flow targets v = ε − z0 by hand."""
    recipe = get_recipe("motion_director", spatial_skip_probability=0.0)
    (sample,) = cache_samples(wan, recipe, clipset(wan_clip()), frames=FRAMES, width=SIZE, height=SIZE)
    names = {"spatial_0": "spatial_0", "temporal": "temporal"}
    for spec in recipe.adapters(wan, 1, rank=2, alpha=2.0, dropout=0.0):
        from motion_core.lora import add_adapter

        add_adapter(wan.denoiser, spec, enabled=False, trainable=False)
    try:
        ctx = StepContext(wan, recipe, torch.Generator().manual_seed(7), sample, stage="main", step=0, loss_scale=1.0,
                          precision=Precision("fp32", torch.device("cpu")), adapter_names=names)
        terms = recipe.step(ctx)
        g = torch.Generator().manual_seed(7)
        z0, images = sample.latents, sample.image_latents
        noise = torch.randn(z0.shape, generator=g)
        index = torch.randint(0, 1000, (1,), generator=g)
        sigma = float(wan.objective.sigma(index))
        t = torch.tensor([sigma * 1000])
        assert float(torch.rand((1,), generator=g, dtype=torch.float64)) >= 0.0  # the skip draw
        frame = int(torch.randint(0, FRAMES, (1,), generator=g))
        frame_noise = torch.randn(images[:, :, frame:frame + 1].shape, generator=g)
        anchor = int(torch.randint(0, 2, (1,), generator=g))
        with torch.no_grad():
            clean_f = images[:, :, frame:frame + 1]
            ctx.use_adapters(enabled=["spatial_0"])
            pred_f = wan.denoise((1 - sigma) * clean_f + sigma * frame_noise, t, sample.text_states)
            ctx.use_adapters(enabled=["spatial_0", "temporal"])
            pred = wan.denoise((1 - sigma) * z0 + sigma * noise, t, sample.text_states)
        assert terms["spatial"].item() == pytest.approx(losses.mse(pred_f, frame_noise - clean_f).item(), rel=1e-4)
        target = noise - z0
        assert terms["temporal_mse"].item() == pytest.approx(losses.mse(pred, target).item(), rel=1e-4)
        assert terms["temporal_debiased"].item() == pytest.approx(
            losses.appearance_debiased(pred, target, anchor).item(), rel=1e-4)
    finally:
        from motion_core.lora import remove_all_adapters

        remove_all_adapters(wan.denoiser)


@pytest.mark.parametrize("name, stage, expected", [
    ("motion_director", "main", [{"spatial_0"}, {"temporal"}]),
    ("vmc", "main", [{"temporal"}]),
    ("customize_a_video", "absorber", [{"absorber"}]),
    ("customize_a_video", "motion", [{"temporal"}]),
    ("motion_crafter", "main", [{"spatial", "temporal"}]),
    ("newmove", "main", [{"motion"}]),
    ("naive", "main", [{"motion"}]),
])
def test_only_the_intended_adapters_learn_on_wan(wan, name, stage, expected):
    options = {"spatial_skip_probability": 0.0} if name == "motion_director" else {}
    per_backward, changed, base_ok, terms = probe_step(wan, get_recipe(name, **options), clipset(wan_clip()),
                                                       stage=stage, frames=FRAMES, size=SIZE)
    assert per_backward == expected
    assert changed == set().union(*expected) and base_ok and "total" in terms


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_lowers_its_loss_on_wan_and_writes_a_wan_lora(wan, name):
    # MotionCrafter fits only the frame deviations m(v) of two latent frames, most of which is the fresh noise's own
    # (unpredictable) part, and its appearance term starts at 0 and grows: its motion term falls, but slowly.
    steps, lr, term = (100, 1e-2, "motion") if name == "motion_crafter" else (20, 2e-2, "total")
    config = TrainingConfig(steps=steps, lr=lr, seed=0, name="wave", **FAST)
    result = train_motion_lora(wan, clipset(wan_clip()), name, config)
    totals = [h[term] for h in result.history if term in h]
    n = steps // 4
    first, last = sum(totals[:n]) / n, sum(totals[-n:]) / n
    assert last < 0.95 * first, f"{name}: loss went from {first:.4f} to {last:.4f}"
    lora = result.motion_lora
    assert (lora.family, lora.recipe, lora.frames, lora.base_fingerprint) == ("wan", name, FRAMES, wan.fingerprint())
    assert not any(".lora_" in n for n, _ in wan.denoiser.named_parameters())


def test_resume_on_wan_equals_an_uninterrupted_run_and_cancel_writes_a_checkpoint(wan, tmp_path):
    config = TrainingConfig(steps=4, lr=1e-2, seed=3, checkpoint_dir=str(tmp_path / "a"), **FAST)
    full = train_motion_lora(wan, clipset(wan_clip()), "motion_director", config)
    stop = TrainingConfig(steps=4, lr=1e-2, seed=3, checkpoint_dir=str(tmp_path / "b"), **FAST)
    calls = []
    cancel = TrainingCallbacks(should_cancel=lambda: len(calls) == 2, on_progress=calls.append)
    with pytest.raises(CancelledError, match="after 2 of 4 steps"):
        train_motion_lora(wan, clipset(wan_clip()), "motion_director", stop, cancel)
    checkpoint = next((tmp_path / "b").glob("*"))
    resumed = train_motion_lora(wan, clipset(wan_clip()), "motion_director", stop, resume_from=checkpoint)
    for key, value in full.motion_lora.tensors.items():
        assert torch.equal(value, resumed.motion_lora.tensors[key])
    assert [h["total"] for h in full.history] == [h["total"] for h in resumed.history]


def test_wan_refuses_a_frame_count_its_vae_cannot_encode(wan):
    with pytest.raises(InvalidInputError, match=r"1 \+ 4"):
        train_motion_lora(wan, clipset(wave_clip(frames=4, size=SIZE)), "naive",
                          TrainingConfig(steps=1, **{**FAST, "frames": 4}))


def test_training_leaves_the_wan_base_weights_untouched(wan):
    before = base_snapshot(wan.denoiser)
    train_motion_lora(wan, clipset(wan_clip()), "newmove", TrainingConfig(steps=2, lr=1e-2, **FAST))
    after = base_snapshot(wan.denoiser)
    assert all(torch.equal(before[k], after[k]) for k in before)
