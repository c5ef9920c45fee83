"""The Backbone contract on a tiny random-init Wan (WanTransformer3DModel, AutoencoderKLWan, UMT5, T5 tokenizer).

The tiny VAE compresses time by 4 and space by 4; the transformer's patch is 2x2, so frames are multiples of 8 px and
clips are 1 + 4k frames: 5 frames of 16x16 give latents [B, 16, 2, 4, 4]. Text states are [B, 32, 4096].
"""

import json
import warnings

import pytest
import torch

from motion_core.backbones import WanBackbone, tiny_wan_backbone
from motion_core.backbones.objectives import FlowMatchObjective
from motion_core.errors import InvalidInputError

WAN_SETS = {"spatial_self_attn", "spatial_cross_attn_q", "spatial_cross_attn_kv", "spatial_cross_attn", "spatial_ff",
            "temporal_attn", "temporal_attn_qkv"}


@pytest.fixture(scope="module")
def backbone():
    """Shared read-only tiny Wan (tests that mutate a model build their own)."""
    return tiny_wan_backbone()


def test_builder_returns_the_real_classes_frozen():
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
    from transformers import T5Tokenizer, UMT5EncoderModel

    bb = tiny_wan_backbone()
    assert isinstance(bb, WanBackbone) and bb.family == "wan"
    assert isinstance(bb.denoiser, WanTransformer3DModel) and isinstance(bb.vae, AutoencoderKLWan)
    assert isinstance(bb.text_encoder, UMT5EncoderModel) and isinstance(bb.tokenizer, T5Tokenizer)
    assert isinstance(bb.scheduler, FlowMatchEulerDiscreteScheduler)
    assert not any(p.requires_grad for p in bb.denoiser.parameters()), "base weights must start frozen"


def test_tiny_widths_match_what_comfyui_derives_from_a_wan_state_dict(backbone):
    """ComfyUI reads num_heads = dim // 128 and a 4096-wide text input; the tiny model must agree with both."""
    config = backbone.denoiser.config
    assert config.attention_head_dim == 128 and config.num_attention_heads == 1 and config.text_dim == 4096
    assert backbone.text_encoder.config.d_model == 4096


def test_same_seed_same_weights_and_different_seed_different_weights():
    a, b, c = tiny_wan_backbone(0), tiny_wan_backbone(0), tiny_wan_backbone(1)
    for part in ("denoiser", "vae", "text_encoder"):
        wa, wb, wc = (next(getattr(bb, part).parameters()) for bb in (a, b, c))
        assert torch.equal(wa, wb) and not torch.equal(wa, wc), part


def test_layout_is_read_from_the_components(backbone):
    assert backbone.temporal_compression == 4
    assert backbone.vae_scale_factor == 4 and backbone.pixel_multiple == 8
    assert backbone.latent_channels == 16
    assert [backbone.latent_frames(f) for f in (1, 5, 9, 13)] == [1, 2, 3, 4]
    assert "variant=" in repr(backbone)


def test_objective_is_flow_matching_with_the_schedulers_shift():
    from diffusers import UniPCMultistepScheduler

    bb = tiny_wan_backbone(shift=5.0)
    assert isinstance(bb.objective, FlowMatchObjective) and bb.prediction_type == "flow"
    assert bb.objective.shift == 5.0
    unipc = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=7.0)
    rebuilt = WanBackbone(denoiser=bb.denoiser, vae=bb.vae, text_encoder=bb.text_encoder, tokenizer=bb.tokenizer,
                          scheduler=unipc)
    assert rebuilt.objective.shift == 7.0


def test_encode_video_gives_normalised_latents_with_compressed_time(backbone):
    frames = torch.rand(2, 5, 16, 24, 3)
    latents = backbone.encode_video(frames)
    assert latents.shape == (2, 16, 2, 4, 6)
    single = backbone.encode_video(frames[1])
    torch.testing.assert_close(single[0], latents[1], atol=1e-5, rtol=1e-4)
    # WanPipeline's normalisation: (posterior mean - latents_mean) / latents_std, per channel.
    with torch.no_grad():
        raw = backbone.vae.encode(frames[:1].permute(0, 4, 1, 2, 3) * 2 - 1).latent_dist.mean
    mean = torch.tensor(backbone.vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(backbone.vae.config.latents_std).view(1, -1, 1, 1, 1)
    torch.testing.assert_close(latents[:1], (raw - mean) / std, atol=1e-5, rtol=1e-4)


def test_encode_video_uses_posterior_mean_unless_sampling_is_asked(backbone):
    frames = torch.rand(1, 5, 16, 16, 3)
    torch.testing.assert_close(backbone.encode_video(frames), backbone.encode_video(frames))
    draw = lambda: backbone.encode_video(frames, sample_posterior=True, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(draw(), draw())
    assert not torch.allclose(draw(), backbone.encode_video(frames))


def test_clips_that_are_not_one_plus_four_k_frames_are_refused(backbone):
    for frames in (2, 4, 6, 8):
        with pytest.raises(InvalidInputError, match=r"1 \+ 4·k frames"):
            backbone.encode_video(torch.rand(frames, 16, 16, 3))


def test_bad_frame_sizes_and_types_are_refused(backbone):
    with pytest.raises(InvalidInputError, match="multiple of"):
        backbone.encode_video(torch.rand(5, 16, 18, 3))
    with pytest.raises(InvalidInputError, match="float"):
        backbone.encode_video(torch.zeros(5, 16, 16, 3, dtype=torch.uint8))


def test_encode_frames_as_images_gives_one_latent_frame_per_video_frame(backbone):
    frames = torch.rand(2, 3, 16, 16, 3)
    latents = backbone.encode_frames_as_images(frames)
    assert latents.shape == (2, 16, 3, 4, 4)
    alone = backbone.encode_video(frames[1, 2:3])
    torch.testing.assert_close(latents[1:, :, 2:3], alone, atol=1e-5, rtol=1e-4)


def test_decode_latents_inverts_the_normalisation_and_returns_comfy_frames(backbone):
    latents = torch.randn(2, 16, 2, 4, 4)
    frames = backbone.decode_latents(latents)
    assert frames.shape == (2, 5, 16, 16, 3) and frames.dtype == torch.float32 and frames.device.type == "cpu"
    assert frames.min() >= 0 and frames.max() <= 1
    mean = torch.tensor(backbone.vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(backbone.vae.config.latents_std).view(1, -1, 1, 1, 1)
    with torch.no_grad():
        direct = backbone.vae.decode(latents[:1] * std + mean).sample
    torch.testing.assert_close(frames[:1], (direct / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 4, 1))


def test_encode_prompt_zeroes_states_past_each_prompts_tokens(backbone):
    prompts = ["a dog", "a  cat\tdancing "]
    states = backbone.encode_prompt(prompts)
    assert states.shape == (2, 32, 4096)
    lengths = [len(backbone.tokenizer(p).input_ids) for p in ("a dog", "a cat dancing")]
    assert [int((row.abs().sum(-1) > 0).sum()) for row in states] == lengths
    assert not states[0, lengths[0]:].any() and states[1, : lengths[1]].abs().sum(-1).min() > 0
    torch.testing.assert_close(backbone.encode_prompt("a dog"), states[:1])


def test_a_prompt_longer_than_the_text_window_warns_with_its_length(backbone):
    with pytest.warns(UserWarning, match=r"102 tokens long .* cut at 32 tokens"):
        states = backbone.encode_prompt(["x" * 100])
    assert states.shape == (1, 32, 4096) and states.abs().sum(-1).gt(0).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        backbone.encode_prompt(["a short prompt"])


def test_denoise_predicts_one_value_per_latent_at_float_timesteps(backbone):
    latents = torch.randn(2, 16, 2, 4, 4)
    text = backbone.encode_prompt(["a", "b"])
    with torch.no_grad():
        out = backbone.denoise(latents, torch.tensor([12.5, 987.0]), text)
        same_t = backbone.denoise(latents, 12.5, text)
        other_t = backbone.denoise(latents, 600.0, text)
    assert out.shape == latents.shape and torch.isfinite(out).all()
    torch.testing.assert_close(out[0], same_t[0], atol=1e-5, rtol=1e-4)
    assert not torch.allclose(same_t, other_t)


def test_denoise_on_chosen_latent_frames_runs_them_as_their_own_clip(backbone):
    latents = torch.randn(1, 16, 4, 4, 4)
    text = backbone.encode_prompt(["a"])
    with torch.no_grad():
        one = backbone.denoise(latents, 500.0, text, frame_indices=[2])
        alone = backbone.denoise(latents[:, :, 2:3], 500.0, text)
        picked = backbone.denoise(latents, 500.0, text, frame_indices=torch.tensor([3, 0]))
        reordered = backbone.denoise(latents[:, :, [3, 0]], 500.0, text)
        negative = backbone.denoise(latents, 500.0, text, frame_indices=[-1])
    assert one.shape == (1, 16, 1, 4, 4)
    torch.testing.assert_close(one, alone)
    torch.testing.assert_close(picked, reordered)
    torch.testing.assert_close(negative, backbone.denoise(latents[:, :, 3:], 500.0, text).detach())
    for bad in ([4], [], [-5]):
        with pytest.raises(InvalidInputError, match="frame_indices"):
            backbone.denoise(latents, 500.0, text, frame_indices=bad)


def test_denoise_broadcasts_one_prompt_and_rejects_mismatched_batches(backbone):
    latents = torch.randn(2, 16, 2, 4, 4)
    text = backbone.encode_prompt(["a"])
    with torch.no_grad():
        broadcast = backbone.denoise(latents, 5.0, text)
        explicit = backbone.denoise(latents, 5.0, text.expand(2, -1, -1))
    torch.testing.assert_close(broadcast, explicit)
    with pytest.raises(InvalidInputError, match="prompts"):
        backbone.denoise(torch.randn(3, 16, 2, 4, 4), 5.0, backbone.encode_prompt(["a", "b"]))


def test_denoise_refuses_latents_the_transformer_cannot_patch(backbone):
    text = backbone.encode_prompt(["a"])
    with pytest.raises(InvalidInputError, match="16-channel"):
        backbone.denoise(torch.randn(1, 4, 2, 4, 4), 5.0, text)
    with pytest.raises(InvalidInputError, match="multiples of 8 pixels"):
        backbone.denoise(torch.randn(1, 16, 2, 4, 5), 5.0, text)
    with pytest.raises(InvalidInputError, match="position table"):
        backbone.denoise(torch.randn(1, 16, 65, 2, 2), 5.0, text)


def test_target_sets_are_the_dit_reading_of_the_shared_sets(backbone):
    assert set(backbone.target_sets) == WAN_SETS
    assert "temporal_ff" not in backbone.target_sets and "temporal_conv" not in backbone.target_sets
    counts = {s: len(backbone.target_modules(s)) for s in WAN_SETS}  # two blocks
    assert counts == {"spatial_self_attn": 8, "spatial_cross_attn_q": 2, "spatial_cross_attn_kv": 4,
                      "spatial_cross_attn": 8, "spatial_ff": 4, "temporal_attn": 8, "temporal_attn_qkv": 6}
    modules = dict(backbone.denoiser.named_modules())
    for set_name in WAN_SETS:
        assert all(isinstance(modules[n], torch.nn.Linear) for n in backbone.target_modules(set_name)), set_name


def test_spatial_self_attn_shares_modules_with_temporal_attn(backbone):
    """Joint space-time attention: the spatial LoRA and the motion LoRA are two adapters on the same attn1."""
    tm = backbone.target_modules
    assert tm("spatial_self_attn") == tm("temporal_attn")
    assert all(".attn1." in n for n in tm("temporal_attn"))
    assert set(tm("temporal_attn_qkv")) == {n for n in tm("temporal_attn") if not n.endswith("to_out.0")}


def test_cross_attention_and_ff_sets_point_at_attn2_and_ffn(backbone):
    tm = backbone.target_modules
    assert all(n.endswith("attn2.to_q") for n in tm("spatial_cross_attn_q"))
    assert all(n.endswith(("attn2.to_k", "attn2.to_v")) for n in tm("spatial_cross_attn_kv"))
    assert set(tm("spatial_cross_attn")) == set(tm("spatial_cross_attn_q")) | set(tm("spatial_cross_attn_kv")) | {
        n for n in tm("spatial_cross_attn") if n.endswith("attn2.to_out.0")}
    assert all(n.endswith(("ffn.net.0.proj", "ffn.net.2")) for n in tm("spatial_ff"))
    temporal = set(tm("temporal_attn"))
    assert not temporal & (set(tm("spatial_cross_attn")) | set(tm("spatial_ff")))


def _lora_run(checkpointed: bool):
    """Output and LoRA grads of one training-style step on a tiny Wan carrying a temporal LoRA (B made non-zero so
    both A and B receive gradient)."""
    from motion_core.lora import AdapterSpec, adapter_parameters, add_adapter

    bb = tiny_wan_backbone()
    add_adapter(bb.denoiser, AdapterSpec("temporal", tuple(bb.target_modules("temporal_attn")), rank=4, alpha=4))
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        for p in adapter_parameters(bb.denoiser, "temporal"):
            p.normal_(0, 0.05)
    if checkpointed:
        bb.enable_gradient_checkpointing()
    latents, text = torch.randn(1, 16, 2, 4, 4, generator=torch.Generator().manual_seed(3)), bb.encode_prompt(["a"])
    out = bb.denoise(latents, 700.0, text)
    out.square().mean().backward()
    grads = {n: p.grad.clone() for n, p in bb.denoiser.named_parameters() if p.grad is not None}
    return bb, out.detach(), grads


def test_gradient_checkpointing_gives_the_same_output_and_lora_gradients(monkeypatch):
    from motion_core.backbones import checkpointing

    calls = []
    real_checkpoint = checkpointing.checkpoint
    monkeypatch.setattr(checkpointing, "checkpoint", lambda *a, **k: calls.append(1) or real_checkpoint(*a, **k))
    _, plain_out, plain = _lora_run(checkpointed=False)
    assert not calls
    bb, out, grads = _lora_run(checkpointed=True)
    assert bb.gradient_checkpointing and len(calls) == len(bb.denoiser.blocks), "each block runs checkpointed"
    assert not bb.denoiser.gradient_checkpointing, "diffusers' own switch stays off (no double checkpointing)"
    torch.testing.assert_close(out, plain_out, atol=1e-5, rtol=1e-4)
    assert plain.keys() == grads.keys() and all("lora_" in n for n in grads) and len(grads) == 2 * 8
    for name in plain:
        assert plain[name].abs().sum() > 0, name
        torch.testing.assert_close(grads[name], plain[name], atol=1e-5, rtol=1e-4, msg=name)
    calls.clear()
    with torch.no_grad():
        bb.denoise(torch.randn(1, 16, 2, 4, 4), 700.0, bb.encode_prompt(["a"]))
    assert not calls, "sampling under no_grad is not checkpointed"
    bb.disable_gradient_checkpointing()
    assert not bb.gradient_checkpointing


def test_tiny_wan_diffusers_folder_is_a_wan_pipeline_with_the_same_weights(tmp_path):
    from diffusers import WanPipeline

    from motion_core.backbones import save_tiny_wan_diffusers_folder

    folder = save_tiny_wan_diffusers_folder(tmp_path / "tiny_wan", seed=0)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "WanPipeline"
    assert {k for k in index if not k.startswith("_")} == {"transformer", "vae", "text_encoder", "tokenizer",
                                                             "scheduler"}
    pipe = WanPipeline.from_pretrained(str(folder), local_files_only=True)
    bb = tiny_wan_backbone(0)
    for name, part in (("transformer", "denoiser"), ("vae", "vae"), ("text_encoder", "text_encoder")):
        loaded, built = getattr(pipe, name).state_dict(), getattr(bb, part).state_dict()
        assert loaded.keys() == built.keys() and all(torch.equal(loaded[k], built[k]) for k in built), name
    assert pipe.tokenizer("a dog").input_ids == bb.tokenizer("a dog").input_ids
    assert pipe.scheduler.config.shift == 3.0
