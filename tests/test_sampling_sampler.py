"""The sampler: solvers, seeds, LoRA stacks with step ranges, no leaks, cancel, progress and refused LoRAs."""

import pytest
import torch
from test_sampling_support import assert_same_state, denoiser_state, random_lora, request

from motion_core.backbones import tiny_animatediff_backbone, tiny_unet3d_backbone
from motion_core.errors import CancelledError, InvalidInputError, LoraMismatchError
from motion_core.lora import attach_lora, remove_all_adapters, set_adapter_scale
from motion_core.sampling import SCHEDULER_NAMES, LoraStack, SamplingCallbacks, sample_video


@pytest.fixture(scope="module")
def backbone():
    return tiny_unet3d_backbone(0)


@pytest.fixture(scope="module")
def motion(backbone):
    return random_lora(backbone, ["temporal_attn", "temporal_conv"], seed=1, name="dance")


@pytest.fixture(scope="module")
def appearance(backbone):
    return random_lora(backbone, ["spatial_self_attn"], seed=2, name="watercolour", kind="appearance")


@pytest.mark.parametrize("scheduler", SCHEDULER_NAMES)
def test_each_scheduler_samples_frames_in_comfy_image_layout(backbone, scheduler):
    result = sample_video(backbone, request(scheduler=scheduler, width=24))
    assert result.frames.shape == (8, 16, 24, 3) and result.frames.dtype == torch.float32
    assert result.frames.device.type == "cpu"
    assert 0.0 <= float(result.frames.min()) and float(result.frames.max()) <= 1.0
    assert torch.isfinite(result.latents).all()


def test_animatediff_family_samples_too():
    result = sample_video(tiny_animatediff_backbone(0), request(scheduler="euler_ancestral"))
    assert result.frames.shape == (8, 16, 16, 3)


def test_same_seed_same_video_other_seed_other_video(backbone):
    a = sample_video(backbone, request(scheduler="euler_ancestral"))
    b = sample_video(backbone, request(scheduler="euler_ancestral"))
    c = sample_video(backbone, request(scheduler="euler_ancestral", seed=8))
    assert torch.equal(a.latents, b.latents)
    assert not torch.allclose(a.latents, c.latents)


def test_negative_prompt_and_cfg_change_the_result(backbone):
    base = sample_video(backbone, request()).latents
    assert not torch.allclose(sample_video(backbone, request(negative_prompt="static")).latents, base)
    assert not torch.allclose(sample_video(backbone, request(cfg=1.0)).latents, base)


def test_no_leak_base_output_is_bit_identical_after_a_stacked_run(backbone, motion, appearance):
    before_weights = denoiser_state(backbone)
    before = sample_video(backbone, request()).latents
    stack = LoraStack().add(motion, 1.0, 0.0, 0.5).add(appearance, -0.8, 0.3, 1.0)
    with_loras = sample_video(backbone, request(lora_stack=stack)).latents
    after = sample_video(backbone, request()).latents
    assert not torch.allclose(with_loras, before)
    assert torch.equal(after, before)
    assert_same_state(backbone, before_weights)


def test_strength_zero_is_exactly_no_lora(backbone, motion):
    base = sample_video(backbone, request()).latents
    zero = sample_video(backbone, request(lora_stack=LoraStack().add(motion, 0.0)))
    assert torch.equal(zero.latents, base) and zero.merge_count == 0


def test_negative_strength_moves_the_other_way(backbone, motion):
    base = sample_video(backbone, request(steps=2)).latents
    plus = sample_video(backbone, request(steps=2, lora_stack=LoraStack().add(motion, 0.005))).latents
    minus = sample_video(backbone, request(steps=2, lora_stack=LoraStack().add(motion, -0.005))).latents
    assert not torch.allclose(minus, base) and not torch.allclose(minus, plus)
    # small strengths stay in the linear regime, where the two effects are opposite
    assert torch.nn.functional.cosine_similarity((plus - base).flatten(), (minus - base).flatten(), dim=0) < -0.9


def test_merged_sampling_matches_runtime_adapters(backbone, motion, appearance):
    stack = LoraStack().add(motion, 0.8).add(appearance, -0.6)
    merged = sample_video(backbone, request(steps=2, lora_stack=stack)).latents
    try:
        for entry in stack:
            name = attach_lora(backbone.denoiser, entry.lora, family=backbone.family,
                               fingerprint=backbone.fingerprint())
            set_adapter_scale(backbone.denoiser, name, entry.strength)
        runtime = sample_video(backbone, request(steps=2)).latents
    finally:
        remove_all_adapters(backbone.denoiser)
    torch.testing.assert_close(merged, runtime, rtol=1e-3, atol=1e-3)


def test_step_range_switch_takes_effect_at_the_right_step(backbone, motion, appearance):
    """Spy on one motion and one appearance weight at each denoiser call: motion acts in steps 0-1 of 4 (0..0.5),
    appearance from step 1 on (0.25..1)."""
    motion_module = backbone.denoiser.get_submodule(motion.modules()[0])
    look_module = backbone.denoiser.get_submodule(appearance.modules()[0])
    base_motion, base_look = motion_module.weight.clone(), look_module.weight.clone()
    seen = []
    hook = backbone.denoiser.register_forward_pre_hook(lambda *_: seen.append(
        (not torch.equal(motion_module.weight, base_motion), not torch.equal(look_module.weight, base_look))))
    try:
        stack = LoraStack().add(motion, 1.0, 0.0, 0.5).add(appearance, 1.0, 0.25, 1.0)
        result = sample_video(backbone, request(steps=4, lora_stack=stack))
    finally:
        hook.remove()
    assert seen == [(True, False), (True, True), (False, True), (False, True)]
    assert result.merge_count == 3


def test_cancel_stops_within_one_step_and_restores_the_base(backbone, motion):
    before = denoiser_state(backbone)
    calls, progress = [], []

    def cancel_after_two():
        calls.append(len(progress))
        return len(progress) >= 2

    callbacks = SamplingCallbacks(progress=lambda s, t, p: progress.append((s, t)), should_cancel=cancel_after_two,
                                  preview="none")
    with pytest.raises(CancelledError, match="2 of 5"):
        sample_video(backbone, request(steps=5, lora_stack=LoraStack().add(motion, 1.0)), callbacks)
    assert progress == [(1, 5), (2, 5)]
    assert_same_state(backbone, before)


def test_progress_reports_every_step_with_a_small_rgb_preview(backbone):
    seen = []
    sample_video(backbone, request(steps=3), SamplingCallbacks(progress=lambda s, t, p: seen.append((s, t, p))))
    assert [(s, t) for s, t, _ in seen] == [(1, 3), (2, 3), (3, 3)]
    preview = seen[-1][2]
    assert preview.shape == (8, 8, 8, 3) and 0.0 <= float(preview.min()) and float(preview.max()) <= 1.0
    latents = []
    sample_video(backbone, request(steps=2), SamplingCallbacks(progress=lambda s, t, p: latents.append(p),
                                                               preview="latents"))
    assert latents[-1].shape == (4, 8, 8, 8)


def test_peft_adapters_already_attached_keep_acting_with_an_empty_stack(backbone, motion):
    base = sample_video(backbone, request(steps=2)).latents
    try:
        attach_lora(backbone.denoiser, motion, family=backbone.family, fingerprint=backbone.fingerprint())
        with_adapter = sample_video(backbone, request(steps=2)).latents
    finally:
        remove_all_adapters(backbone.denoiser)
    assert not torch.allclose(with_adapter, base)


def _refused(backbone, lora, match):
    before = denoiser_state(backbone)
    progress = []
    with pytest.raises(LoraMismatchError, match=match):
        sample_video(backbone, request(lora_stack=LoraStack().add(lora, 1.0)),
                     SamplingCallbacks(progress=lambda *a: progress.append(a)))
    assert progress == []
    assert_same_state(backbone, before)


def test_lora_for_another_family_is_refused_before_sampling(backbone):
    other = random_lora(tiny_animatediff_backbone(0), ["temporal_attn"], name="ad_dance")
    _refused(backbone, other, "ad_dance.*family 'animatediff'.*'unet3d'")


def test_lora_for_another_base_model_is_refused_before_sampling(backbone, motion):
    _refused(backbone, motion.with_metadata(name="elsewhere", base_fingerprint="0123456789abcdef"),
             "elsewhere.*base model 0123456789abcdef")


def test_lora_of_another_shape_is_refused_before_sampling(backbone, motion):
    module = motion.modules()[0]
    tensors = dict(motion.tensors)
    key_a = f"unet.{module}.lora_A.weight"
    tensors[key_a] = torch.zeros(motion.module_rank(module), tensors[key_a].shape[1] + 1)
    wider = type(motion)(tensors, {**motion.metadata, "name": "wider"})
    _refused(backbone, wider, "entry 1 of 1.*wider.*does not fit")


@pytest.mark.parametrize("change, match", [
    (dict(scheduler="heun"), "Unknown scheduler"), (dict(width=15), "multiples of 2"), (dict(steps=0), "steps"),
    (dict(noise_prior_p=0.5), "no reference clip"), (dict(cfg=float("nan")), "CFG"),
])
def test_bad_requests_fail_with_a_clear_error(backbone, change, match):
    with pytest.raises(InvalidInputError, match=match):
        sample_video(backbone, request(**change))
