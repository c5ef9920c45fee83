"""The Backbone contract on tiny random-init models of the real classes (UNet3D and AnimateDiff)."""

import ast
import copy
from pathlib import Path

import pytest
import torch

from motion_core.backbones import (
    SHARED_TARGET_SETS,
    AnimateDiffBackbone,
    UNet3DBackbone,
    tiny_animatediff_backbone,
    tiny_unet3d_backbone,
)
from motion_core.errors import InvalidInputError

BUILDERS = {"unet3d": tiny_unet3d_backbone, "animatediff": tiny_animatediff_backbone}
SPATIAL = ("spatial_self_attn", "spatial_cross_attn", "spatial_ff")
TEMPORAL = ("temporal_attn", "temporal_ff")


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def backbone(request):
    """Shared read-only backbone per family (tests that mutate a model build their own)."""
    return BUILDERS[request.param]()


def test_builders_return_the_real_classes():
    from diffusers import AutoencoderKL, UNet3DConditionModel, UNetMotionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    unet3d, animatediff = tiny_unet3d_backbone(), tiny_animatediff_backbone()
    assert isinstance(unet3d, UNet3DBackbone) and isinstance(unet3d.denoiser, UNet3DConditionModel)
    assert isinstance(animatediff, AnimateDiffBackbone) and isinstance(animatediff.denoiser, UNetMotionModel)
    for bb in (unet3d, animatediff):
        assert isinstance(bb.vae, AutoencoderKL) and isinstance(bb.text_encoder, CLIPTextModel)
        assert isinstance(bb.tokenizer, CLIPTokenizer)
        assert bb.prediction_type == "epsilon"
        assert not any(p.requires_grad for p in bb.denoiser.parameters()), "base weights must start frozen"


def test_same_seed_same_weights_and_different_seed_different_weights():
    a, b, c = tiny_unet3d_backbone(0), tiny_unet3d_backbone(0), tiny_unet3d_backbone(1)
    wa, wb, wc = (next(bb.denoiser.parameters()) for bb in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_encode_video_gives_scaled_latents_in_bcfhw_layout(backbone):
    frames = torch.rand(2, 5, 16, 24, 3)
    latents = backbone.encode_video(frames)
    assert latents.shape == (2, 4, 5, 8, 12)
    single = backbone.encode_video(frames[0])
    assert single.shape == (1, 4, 5, 8, 12)
    torch.testing.assert_close(single[0], latents[0], atol=1e-5, rtol=1e-4)


def test_encode_video_uses_posterior_mean_unless_sampling_is_asked(backbone):
    frames = torch.rand(1, 3, 16, 16, 3)
    torch.testing.assert_close(backbone.encode_video(frames), backbone.encode_video(frames))
    sampled = backbone.encode_video(frames, sample_posterior=True, generator=torch.Generator().manual_seed(1))
    assert not torch.allclose(sampled, backbone.encode_video(frames))


def test_decode_latents_returns_comfy_image_frames(backbone):
    frames = backbone.decode_latents(torch.randn(2, 4, 3, 8, 8))
    assert frames.shape == (2, 3, 16, 16, 3) and frames.dtype == torch.float32
    assert frames.min() >= 0 and frames.max() <= 1


def test_encode_video_rejects_bad_frames(backbone):
    with pytest.raises(InvalidInputError, match="multiple of 2"):
        backbone.encode_video(torch.rand(3, 15, 16, 3))
    with pytest.raises(InvalidInputError, match="float"):
        backbone.encode_video(torch.zeros(3, 16, 16, 3, dtype=torch.uint8))
    with pytest.raises(InvalidInputError, match="frames, height, width, 3"):
        backbone.encode_video(torch.rand(16, 16, 3))


def test_encode_prompt_gives_one_state_sequence_per_prompt(backbone):
    states = backbone.encode_prompt(["a dog dancing", "V* dance"])
    assert states.shape == (2, 77, 32)
    assert not torch.allclose(states[0], states[1])
    assert backbone.encode_prompt("a dog dancing").shape == (1, 77, 32)


def test_denoise_predicts_one_value_per_latent(backbone):
    latents = torch.randn(2, 4, 4, 8, 8)
    text = backbone.encode_prompt(["a", "b"])
    with torch.no_grad():
        out = backbone.denoise(latents, torch.tensor([10, 900]), text)
        same_t = backbone.denoise(latents, 10, text)
    assert out.shape == latents.shape and torch.isfinite(out).all()
    torch.testing.assert_close(out[0], same_t[0], atol=1e-5, rtol=1e-4)


def test_denoise_on_chosen_frames_runs_them_as_their_own_clip(backbone):
    latents = torch.randn(1, 4, 4, 8, 8)
    text = backbone.encode_prompt(["a"])
    with torch.no_grad():
        one = backbone.denoise(latents, 50, text, frame_indices=[2])
        alone = backbone.denoise(latents[:, :, 2:3], 50, text)
        picked = backbone.denoise(latents, 50, text, frame_indices=torch.tensor([3, 0]))
        reordered = backbone.denoise(latents[:, :, [3, 0]], 50, text)
    assert one.shape == (1, 4, 1, 8, 8)
    torch.testing.assert_close(one, alone)
    torch.testing.assert_close(picked, reordered)
    with pytest.raises(InvalidInputError, match="frame_indices"):
        backbone.denoise(latents, 50, text, frame_indices=[4])


def test_denoise_broadcasts_one_prompt_and_rejects_mismatched_batches(backbone):
    latents = torch.randn(2, 4, 2, 8, 8)
    text = backbone.encode_prompt(["a"])
    with torch.no_grad():
        broadcast = backbone.denoise(latents, 5, text)
        explicit = backbone.denoise(latents, 5, text.expand(2, -1, -1))
    torch.testing.assert_close(broadcast, explicit)
    with pytest.raises(InvalidInputError, match="prompts"):
        backbone.denoise(torch.randn(3, 4, 2, 8, 8), 5, backbone.encode_prompt(["a", "b"]))


def test_animatediff_refuses_more_frames_than_its_position_table():
    bb = tiny_animatediff_backbone()
    with pytest.raises(InvalidInputError, match="at most 32 frames"):
        bb.denoise(torch.randn(1, 4, 33, 2, 2), 5, bb.encode_prompt(["a"]))


def test_target_sets_are_named_non_empty_and_unknown_names_are_refused(backbone):
    expected = set(SHARED_TARGET_SETS) - ({"temporal_conv"} if backbone.family == "animatediff" else set())
    expected |= {"transformer_in"} if backbone.family == "unet3d" else set()
    assert set(backbone.target_sets) == expected
    names = {n for n, _ in backbone.denoiser.named_modules()}
    for set_name in backbone.target_sets:
        modules = backbone.target_modules(set_name)
        assert modules and len(set(modules)) == len(modules), set_name
        assert set(modules) <= names
    with pytest.raises(InvalidInputError, match="available"):
        backbone.target_modules("temporal_everything")


def test_spatial_and_temporal_sets_never_share_a_module(backbone):
    spatial = {n for s in SPATIAL for n in backbone.target_modules(s)}
    temporal = {n for s in TEMPORAL + tuple(x for x in ("temporal_conv", "transformer_in") if x in backbone.target_sets)
                for n in backbone.target_modules(s)}
    assert spatial and temporal and not spatial & temporal
    parts = [set(backbone.target_modules(s)) for s in TEMPORAL + ("transformer_in",) if s in backbone.target_sets]
    assert sum(map(len, parts)) == len(set().union(*parts)), "temporal sets must be disjoint from each other"


def test_composite_sets_are_the_unions_of_their_parts(backbone):
    tm = backbone.target_modules
    assert set(tm("spatial_cross_attn")) == set(tm("spatial_cross_attn_q")) | set(tm("spatial_cross_attn_kv")) | {
        n for n in tm("spatial_cross_attn") if n.endswith("to_out.0")}
    assert set(tm("temporal_attn_qkv")) == {n for n in tm("temporal_attn") if not n.endswith("to_out.0")}
    assert all(n.endswith(("to_q", "to_k", "to_v")) for n in tm("temporal_attn_qkv"))
    assert not set(tm("spatial_self_attn")) & set(tm("spatial_cross_attn"))


def test_unet3d_temporal_conv_and_transformer_in_point_at_the_right_layers():
    bb = tiny_unet3d_backbone()
    modules = dict(bb.denoiser.named_modules())
    assert all(isinstance(modules[n], torch.nn.Conv3d) for n in bb.target_modules("temporal_conv"))
    assert all(n.startswith("transformer_in.") for n in bb.target_modules("transformer_in"))
    assert not any(n.startswith("transformer_in.") for n in bb.target_modules("temporal_attn"))


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_peft_wraps_exactly_the_target_modules_and_they_stay_findable(family):
    from peft import LoraConfig, inject_adapter_in_model

    bb = BUILDERS[family]()
    sets = [s for s in ("spatial_self_attn", "temporal_attn", "temporal_conv") if s in bb.target_sets]
    names = [n for s in sets for n in bb.target_modules(s)]
    inject_adapter_in_model(LoraConfig(r=2, target_modules=names), bb.denoiser, adapter_name="motion")
    wrapped = {n for n, m in bb.denoiser.named_modules() if hasattr(m, "lora_A")}
    assert wrapped == set(names)
    assert [n for s in sets for n in bb.target_modules(s)] == names


def _lora_free_grads(bb, checkpointing: bool):
    bb.denoiser.requires_grad_(True)
    bb.denoiser.zero_grad(set_to_none=True)
    if checkpointing:
        bb.enable_gradient_checkpointing()
    torch.manual_seed(123)  # dropout in the temporal convs draws the same masks in both runs
    latents = torch.randn(1, 4, 3, 8, 8)
    out = bb.denoise(latents, 300, bb.encode_prompt(["a dog"]))
    (out.square().mean()).backward()
    return {n: p.grad.clone() for n, p in bb.denoiser.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("family", sorted(BUILDERS))
def test_gradient_checkpointing_gives_the_same_gradients(family, monkeypatch):
    from motion_core.backbones import checkpointing

    calls = []
    real_checkpoint = checkpointing.checkpoint
    monkeypatch.setattr(checkpointing, "checkpoint", lambda *a, **k: calls.append(1) or real_checkpoint(*a, **k))
    plain = _lora_free_grads(BUILDERS[family](), checkpointing=False)
    assert not calls
    bb = BUILDERS[family]()
    checkpointed = _lora_free_grads(bb, checkpointing=True)
    assert bb.gradient_checkpointing and len(calls) >= 10, "every resnet/transformer layer runs checkpointed"
    assert plain.keys() == checkpointed.keys() and len(plain) > 50
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], atol=1e-5, rtol=1e-4, msg=name)
    bb.disable_gradient_checkpointing()
    assert not bb.gradient_checkpointing


def test_gradient_checkpointing_keeps_names_sampling_and_deepcopy_intact():
    bb = tiny_unet3d_backbone()
    names = [n for n, _ in bb.denoiser.named_modules()]
    latents, text = torch.randn(1, 4, 2, 8, 8), bb.encode_prompt(["a"])
    with torch.no_grad():
        before = bb.denoise(latents, 7, text)
    bb.enable_gradient_checkpointing()
    assert [n for n, _ in bb.denoiser.named_modules()] == names
    with torch.no_grad():
        torch.testing.assert_close(bb.denoise(latents, 7, text), before)
    clone = copy.deepcopy(bb.denoiser)
    layer = clone.down_blocks[0].resnets[0]
    assert layer.forward.module is layer, "a deep copy must run its own weights"


def test_fingerprint_is_stable_short_and_architecture_specific():
    a, b = tiny_unet3d_backbone(0), tiny_unet3d_backbone(1)
    assert a.fingerprint() == b.fingerprint() and len(a.fingerprint()) == 16
    assert a.fingerprint() != tiny_animatediff_backbone().fingerprint()
    assert a.fingerprint() == tiny_unet3d_backbone(dtype=torch.float64).fingerprint()


def test_backbones_package_uses_relative_imports_and_never_comfy():
    for path in Path(__file__).parents[1].joinpath("motion_core", "backbones").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                assert not node.module.startswith(("motion_core", "comfy", "nodes")), (path.name, node.module)
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith(("comfy", "motion_core")) for a in node.names), path.name
