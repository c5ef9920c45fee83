"""LoraStack as a value, and merging stack entries into the weights: equal to run-time adapters, exactly undone."""

import pytest
import torch
from test_sampling_support import assert_same_state, denoiser_state, random_lora

from motion_core.backbones import tiny_animatediff_backbone, tiny_unet3d_backbone
from motion_core.errors import InvalidInputError
from motion_core.lora import attach_lora, remove_all_adapters, set_adapter_scale
from motion_core.sampling import LoraStack, StackMerger


@pytest.fixture(scope="module")
def unet3d():
    return tiny_unet3d_backbone(0)


@pytest.fixture(scope="module")
def animatediff():
    return tiny_animatediff_backbone(0)


def _denoise(backbone, seed=1):
    g = torch.Generator().manual_seed(seed)
    latents = torch.randn(1, 4, 4, 8, 8, generator=g)
    text = torch.randn(1, 6, 32, generator=g)
    backbone.denoiser.eval()
    with torch.no_grad():
        return backbone.denoise(latents, 500, text)


def _motion_and_appearance(backbone):
    motion_sets = ["temporal_attn", "temporal_conv"] if backbone.family == "unet3d" else ["temporal_attn"]
    motion = random_lora(backbone, motion_sets, rank=4, alpha=8.0, seed=1, name="dance")
    extra = random_lora(backbone, ["temporal_ff"], rank=2, alpha=1.0, seed=2, name="sway")
    appearance = random_lora(backbone, ["spatial_self_attn", "spatial_cross_attn"], rank=4, alpha=4.0, seed=3,
                             name="watercolour", kind="appearance")
    return motion, extra, appearance


def test_add_returns_a_new_stack_and_keeps_order():
    backbone = tiny_unet3d_backbone(0)
    a = random_lora(backbone, ["temporal_attn"], name="a")
    b = random_lora(backbone, ["spatial_ff"], name="b", kind="appearance")
    empty = LoraStack()
    one = empty.add(a, 0.7)
    two = one.add(b, -0.5, 0.25, 0.75)
    assert len(empty) == 0 and len(one) == 1 and len(two) == 2
    assert [e.lora.name for e in two] == ["a", "b"]
    assert two[1].strength == -0.5 and (two[1].start_percent, two[1].end_percent) == (0.25, 0.75)
    assert len(one.extend(two)) == 3


@pytest.mark.parametrize("start, end", [(0.6, 0.4), (-0.1, 0.5), (0.0, 1.5), (float("nan"), 1.0)])
def test_bad_step_ranges_are_refused_with_the_lora_named(start, end):
    lora = random_lora(tiny_unet3d_backbone(0), ["temporal_attn"], name="dance")
    with pytest.raises(InvalidInputError, match="dance"):
        LoraStack().add(lora, 1.0, start, end)


def test_segments_follow_the_step_ranges():
    backbone = tiny_unet3d_backbone(0)
    motion = random_lora(backbone, ["temporal_attn"], name="m")
    look = random_lora(backbone, ["spatial_ff"], name="l", kind="appearance")
    stack = LoraStack().add(motion, 1.0, 0.0, 0.5).add(look, 1.0, 0.25, 1.0).add(motion, 0.0)
    assert [stack.active_at(i, 8) for i in range(8)] == [(0,), (0,), (0, 1), (0, 1), (1,), (1,), (1,), (1,)]
    assert [(s.start_step, s.end_step, s.active) for s in stack.segments(8)] == [
        (0, 2, (0,)), (2, 4, (0, 1)), (4, 8, (1,))]


@pytest.mark.parametrize("family", ["unet3d", "animatediff"])
@pytest.mark.parametrize("strengths", [(1.0, 0.6, 0.8), (-0.7, 1.3, -0.4)])
def test_merged_stack_equals_runtime_adapter_mixing(family, strengths, unet3d, animatediff):
    backbone = unet3d if family == "unet3d" else animatediff
    loras = _motion_and_appearance(backbone)
    stack = LoraStack()
    for lora, strength in zip(loras, strengths):
        stack = stack.add(lora, strength)
    with StackMerger(backbone.denoiser, stack) as merger:
        merger.apply(range(len(stack)))
        merged = _denoise(backbone)
    try:
        for lora, strength in zip(loras, strengths):
            name = attach_lora(backbone.denoiser, lora, family=backbone.family, fingerprint=backbone.fingerprint())
            set_adapter_scale(backbone.denoiser, name, strength)
        runtime = _denoise(backbone)
    finally:
        remove_all_adapters(backbone.denoiser)
    base = _denoise(backbone)
    assert not torch.allclose(merged, base, atol=1e-3)
    # The stacks move the output by 1.2-1.7; merged weights and run-time adapters sum in another order, which on an
    # AVX512 CPU differed by up to 2e-4 (1e-5 elsewhere), so 1e-3 is still 0.1% of what a wrong merge would show.
    torch.testing.assert_close(merged, runtime, rtol=1e-3, atol=1e-3)


def test_restore_gives_back_the_exact_base_weights_after_many_switches(unet3d):
    before = denoiser_state(unet3d)
    base = _denoise(unet3d)
    stack = LoraStack()
    for lora, strength in zip(_motion_and_appearance(unet3d), (0.9, -1.1, 0.37)):
        stack = stack.add(lora, strength)
    with StackMerger(unet3d.denoiser, stack) as merger:
        for active in [(0,), (0, 1), (1, 2), (2,), (0, 1, 2), ()]:
            merger.apply(active)
        merger.apply((0, 2))
        assert merger.merge_count == 7
    assert_same_state(unet3d, before)
    assert torch.equal(_denoise(unet3d), base)


def test_half_precision_weights_are_merged_in_their_dtype_and_restored_bit_exactly():
    backbone = tiny_unet3d_backbone(0, dtype=torch.bfloat16)
    before = denoiser_state(backbone)
    lora = random_lora(backbone, ["temporal_attn"], seed=4)
    with StackMerger(backbone.denoiser, LoraStack().add(lora, 0.3)) as merger:
        merger.apply((0,))
        module = lora.modules()[0]
        weight = backbone.denoiser.get_submodule(module).weight
        assert weight.dtype == torch.bfloat16 and not torch.equal(weight, before[module + ".weight"])
    assert_same_state(backbone, before)


def test_zero_strength_entry_leaves_the_weights_untouched(unet3d):
    before = denoiser_state(unet3d)
    lora = random_lora(unet3d, ["temporal_attn"], seed=5)
    stack = LoraStack().add(lora, 0.0)
    assert stack.active_at(0, 1) == ()
    with StackMerger(unet3d.denoiser, stack) as merger:
        merger.apply(stack.active_at(0, 1))
        assert_same_state(unet3d, before)
