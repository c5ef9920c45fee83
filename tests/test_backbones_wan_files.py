"""Wan from the files ComfyUI users have: models/diffusion_models (fp16, bf16, fp8, scaled fp8), models/vae (Wan 2.1
and 2.2 layouts), models/text_encoders (UMT5 with its embedded SentencePiece model), and WanPipeline folders.

Tiny models of the real classes are written in the ORIGINAL layouts (the transformer through wan/keys.py, the VAE
through the inverse of the loader's rule, below) and must load back into the same function. Nothing may touch the network.
"""

import json
import os
import socket

import pytest
import torch
from safetensors.torch import save_file
from wan_samples import PREFIX, _rounded_like_file, _vae_to_original, write_tiny_wan_files

from motion_core.backbones import load_backbone
from motion_core.backbones.loading import detect_family
from motion_core.backbones.wan import CONFIGS_DIR
from motion_core.backbones.wan.keys import diffusers_module_to_original, original_to_diffusers
from motion_core.backbones.wan.loading import load_wan_components
from motion_core.backbones.wan.single_file import (
    load_transformer_file,
    load_vae_file,
    transformer_arch,
    transformer_config_from_weights,
    vae_layout,
    vae_to_diffusers,
)
from motion_core.backbones.wan.text_encoder import load_text_encoder_file
from motion_core.backbones.wan.tiny import save_tiny_wan_diffusers_folder, tiny_wan_parts, tiny_wan_tokenizer
from motion_core.errors import LoraMismatchError, ModelLoadError


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"

    def refuse(*args, **kwargs):
        raise AssertionError("a Wan loader tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    return write_tiny_wan_files(tmp_path_factory.mktemp("wan_files"))


def _denoiser_output(model):
    generator = torch.Generator().manual_seed(1)
    latents = torch.randn(1, 16, 2, 4, 4, generator=generator)
    text = torch.randn(1, 6, 4096, generator=generator)
    with torch.no_grad():
        return model(latents, torch.tensor([500]), text, return_dict=False)[0]


# ---- key mapping ----------------------------------------------------------------------------------------------
def test_key_mapping_round_trips_a_tiny_transformer_and_agrees_with_diffusers(wan):
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    state = wan["parts"]["denoiser"].state_dict()
    original = wan["original"]
    assert {PREFIX + k for k in ("blocks.0.self_attn.q.weight", "blocks.1.cross_attn.norm_k.weight",
                                 "blocks.0.norm3.bias", "blocks.0.ffn.2.weight", "blocks.0.modulation",
                                 "head.modulation", "head.head.weight", "time_projection.1.weight",
                                 "text_embedding.0.weight", "time_embedding.2.bias")} <= set(original)
    back = original_to_diffusers(original)
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)
    assert set(convert_wan_transformer_to_diffusers(dict(original))) == set(state)


def test_module_names_map_to_comfyui_native_lora_names():
    assert diffusers_module_to_original("blocks.3.attn1.to_out.0") == "blocks.3.self_attn.o"
    assert diffusers_module_to_original("transformer.blocks.0.attn2.to_k") == "blocks.0.cross_attn.k"
    assert diffusers_module_to_original("blocks.0.ffn.net.0.proj") == "blocks.0.ffn.0"
    assert diffusers_module_to_original("blocks.2.ffn.net.2") == "blocks.2.ffn.2"
    assert diffusers_module_to_original("condition_embedder.time_proj") == "time_projection.1"
    with pytest.raises(LoraMismatchError, match="no counterpart"):
        diffusers_module_to_original("blocks.0.attn1.rotary")


def test_released_sizes_are_recognised_from_shapes_on_the_meta_device():
    from diffusers import WanTransformer3DModel

    for arch in ("wan2.1_t2v_1.3b", "wan2.1_t2v_14b", "wan2.2_ti2v_5b"):
        shipped = json.loads((CONFIGS_DIR / "wan_transformer" / arch / "config.json").read_text())
        with torch.device("meta"):
            state = WanTransformer3DModel.from_config(shipped).state_dict()
        derived = transformer_config_from_weights(state)
        assert transformer_arch(derived, "some.safetensors") == arch
        assert all(derived[k] == shipped[k] for k in derived if k in shipped and k != "patch_size")
    assert transformer_arch(derived | {"num_attention_heads": 40, "ffn_dim": 13824, "num_layers": 40,
                                       "in_channels": 16}, "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors") \
        == "wan2.2_t2v_a14b_expert"


# ---- transformer files ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, file", [("fp16", "wan_tiny_fp16.safetensors"),
                                        ("fp8", "wan_tiny_fp8_e4m3fn.safetensors"),
                                        ("scaled", "wan_tiny_fp8_scaled.safetensors")])
def test_diffusion_model_file_loads_into_the_same_transformer(wan, kind, file):
    from diffusers import WanTransformer3DModel

    loaded, arch = load_transformer_file(wan["root"] / file, torch.float32)
    assert arch is None and not any(p.is_meta for p in loaded.parameters())
    reference = WanTransformer3DModel.from_config(wan["parts"]["denoiser"].config)
    reference.load_state_dict(_rounded_like_file(wan["parts"]["denoiser"].state_dict(), kind))
    torch.testing.assert_close(_denoiser_output(loaded), _denoiser_output(reference))
    if kind == "fp16":  # and fp16 storage is close to the float32 original
        torch.testing.assert_close(_denoiser_output(loaded), _denoiser_output(wan["parts"]["denoiser"]),
                                   atol=2e-2, rtol=2e-2)


def test_bf16_requested_from_an_fp8_file_gives_bf16_weights(wan):
    loaded, _ = load_transformer_file(wan["root"] / "wan_tiny_fp8_scaled.safetensors", torch.bfloat16)
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}


# ---- VAE and text encoder -------------------------------------------------------------------------------------
def test_vae_file_in_the_wan21_layout_loads_into_the_same_vae(wan):
    vae = load_vae_file(wan["root"] / "wan_tiny_vae.safetensors")
    frames = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    reference = wan["parts"]["vae"]
    with torch.no_grad():
        torch.testing.assert_close(vae.encode(frames).latent_dist.mean, reference.encode(frames).latent_dist.mean)
    assert vae.config.dim_mult == reference.config.dim_mult and vae.config.z_dim == 16


def test_vae_rule_matches_diffusers_converter_on_the_real_wan21_vae_and_reads_the_wan22_layout():
    from diffusers import AutoencoderKLWan
    from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers

    config21 = json.loads((CONFIGS_DIR / "wan_vae" / "wan2.1" / "config.json").read_text())
    with torch.device("meta"):
        state = AutoencoderKLWan.from_config(config21).state_dict()
    original = _vae_to_original(state, False, 2)
    assert "decoder.upsamples.4.shortcut.weight" in original and vae_layout(original) == (False, 2)
    assert set(convert_wan_vae_to_diffusers(original)) == set(vae_to_diffusers(original)) == set(state)
    torch.manual_seed(0)
    tiny22 = AutoencoderKLWan(base_dim=8, decoder_base_dim=12, z_dim=8, dim_mult=[1, 2, 2], num_res_blocks=1,
                              temperal_downsample=[True, True], is_residual=True, in_channels=12, out_channels=12,
                              patch_size=2, scale_factor_spatial=8, latents_mean=[0.0] * 8, latents_std=[1.0] * 8)
    original22 = _vae_to_original(tiny22.state_dict(), True, 1)
    assert any(".downsamples.0.downsamples.0.residual." in k for k in original22)
    assert vae_to_diffusers(original22).keys() == tiny22.state_dict().keys()


def test_wan22_vae_file_loads_with_its_derived_config(tmp_path):
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    tiny22 = AutoencoderKLWan(base_dim=8, decoder_base_dim=12, z_dim=8, dim_mult=[1, 2, 2], num_res_blocks=1,
                              temperal_downsample=[True, True], is_residual=True, in_channels=12, out_channels=12,
                              patch_size=2, scale_factor_spatial=8, latents_mean=[0.0] * 8, latents_std=[1.0] * 8)
    save_file({k: v.contiguous() for k, v in _vae_to_original(tiny22.state_dict(), True, 1).items()},
              str(tmp_path / "wan2.2_tiny_vae.safetensors"))
    vae = load_vae_file(tmp_path / "wan2.2_tiny_vae.safetensors")
    assert vae.config.is_residual and vae.config.patch_size == 2 and vae.config.decoder_base_dim == 12
    frames = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(vae.encode(frames).latent_dist.mean, tiny22.encode(frames).latent_dist.mean)


def test_text_encoder_file_loads_umt5_and_its_embedded_tokenizer(wan):
    from motion_core.backbones.wan.text_encoder import load_umt5_tokenizer

    model, spiece = load_text_encoder_file(wan["root"] / "umt5_tiny_fp16.safetensors")
    tokenizer = load_umt5_tokenizer(spiece)
    expected = tiny_wan_tokenizer()
    for prompt in ("a dog dancing", "A red ball rolls left, fast!"):
        assert tokenizer(prompt).input_ids == expected(prompt).input_ids
    ids = torch.tensor([expected("a dog dancing").input_ids])
    reference = wan["text_encoder"].half().float()
    with torch.no_grad():
        torch.testing.assert_close(model(ids).last_hidden_state, reference(ids).last_hidden_state)
    assert model.encoder.embed_tokens.weight is model.shared.weight


# ---- whole backbones ------------------------------------------------------------------------------------------
def test_load_backbone_takes_comfyui_files(wan):
    root = wan["root"]
    backbone = load_backbone(root / "wan_tiny_fp8_scaled.safetensors", vae=root / "wan_tiny_vae.safetensors",
                             text_encoder=root / "umt5_tiny_fp16.safetensors")
    assert backbone.family == "wan" and backbone.model_info["boundary_ratio"] is None
    assert backbone.scheduler.config.shift == 3.0
    states = backbone.encode_prompt(["a dog dancing"])
    latents = torch.randn(1, 16, 2, 4, 4)
    with torch.no_grad():
        assert torch.isfinite(backbone.denoise(latents, torch.tensor([500]), states)).all()


def test_wan_folders_are_detected_and_a14b_experts_chosen(tmp_path):
    folder = save_tiny_wan_diffusers_folder(tmp_path / "wan", seed=0)
    assert detect_family(folder) == "wan"
    assert load_backbone(folder).family == "wan"
    second = tiny_wan_parts(1)["denoiser"]
    second.save_pretrained(folder / "transformer_2")
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "boundary_ratio": 0.875}))
    parts = load_wan_components(folder, expert="low_noise")
    assert parts["model_info"] == {**parts["model_info"], "expert": "low_noise", "boundary_ratio": 0.875}
    torch.testing.assert_close(parts["denoiser"].state_dict(), second.state_dict())


# ---- refusals that say what to do -----------------------------------------------------------------------------
def test_truncated_file_is_named_with_the_fix(wan, tmp_path):
    data = (wan["root"] / "wan_tiny_fp16.safetensors").read_bytes()
    (tmp_path / "wan_cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match=r"wan_cut\.safetensors is not a complete .*re-download"):
        load_transformer_file(tmp_path / "wan_cut.safetensors")


def test_wrong_files_are_refused_with_the_right_folder(wan, tmp_path):
    root = wan["root"]
    with pytest.raises(ModelLoadError, match=r"wan_tiny_vae\.safetensors is a Wan VAE .*models/vae.*models/diffusion"):
        load_transformer_file(root / "wan_tiny_vae.safetensors")
    with pytest.raises(ModelLoadError, match=r"umt5_tiny_fp16\.safetensors is a UMT5 text encoder"):
        load_vae_file(root / "umt5_tiny_fp16.safetensors")
    vace = {**wan["original"], PREFIX + "vace_patch_embedding.weight": torch.zeros(4, 4),
            PREFIX + "vace_blocks.0.before_proj.weight": torch.zeros(128, 128)}
    save_file({k: v.contiguous() for k, v in vace.items()}, str(tmp_path / "wan2.1_vace_tiny.safetensors"))
    with pytest.raises(ModelLoadError, match=r"wan2.1_vace_tiny\.safetensors is a Wan model for another task"):
        load_backbone(tmp_path / "wan2.1_vace_tiny.safetensors")
    partial = {k: v for k, v in wan["original"].items() if "blocks.1.ffn.2" not in k}
    save_file({k: v.contiguous() for k, v in partial.items()}, str(tmp_path / "wan_partial.safetensors"))
    with pytest.raises(ModelLoadError, match=r"wan_partial\.safetensors does not match .*missing.*blocks\.1\.ffn"):
        load_transformer_file(tmp_path / "wan_partial.safetensors")


def test_single_file_without_vae_or_text_encoder_says_which_file_to_choose(wan):
    root = wan["root"]
    with pytest.raises(ModelLoadError, match=r"needs its text encoder: .*models/text_encoders.*umt5_xxl"):
        load_backbone(root / "wan_tiny_fp16.safetensors", vae=root / "wan_tiny_vae.safetensors")
    with pytest.raises(ModelLoadError, match=r"needs its VAE: .*models/vae.*wan_2.1_vae"):
        load_backbone(root / "wan_tiny_fp16.safetensors", text_encoder=root / "umt5_tiny_fp16.safetensors")


def test_truncated_wan_file_given_to_load_backbone_is_named(wan, tmp_path):
    data = (wan["root"] / "wan_tiny_fp16.safetensors").read_bytes()
    (tmp_path / "wan2.1_t2v_cut.safetensors").write_bytes(data[: len(data) - 1000])
    with pytest.raises(ModelLoadError, match=r"wan2.1_t2v_cut\.safetensors is not a complete .*re-download"):
        load_backbone(tmp_path / "wan2.1_t2v_cut.safetensors", vae=wan["root"] / "wan_tiny_vae.safetensors",
                      text_encoder=wan["root"] / "umt5_tiny_fp16.safetensors")


def test_real_vae_and_umt5_sizes_pick_the_shipped_configs_on_the_meta_device():
    from diffusers import AutoencoderKLWan
    from transformers import UMT5Config, UMT5EncoderModel

    from motion_core.backbones.wan.single_file import vae_config_from_weights
    from motion_core.backbones.wan.text_encoder import umt5_config_from_weights

    for name, residual in (("wan2.1", False), ("wan2.2", True)):
        shipped = json.loads((CONFIGS_DIR / "wan_vae" / name / "config.json").read_text())
        with torch.device("meta"):
            state = AutoencoderKLWan.from_config(shipped).state_dict()
        original = _vae_to_original(state, residual, 2)
        assert vae_config_from_weights(original) == shipped
        assert vae_to_diffusers(original).keys() == state.keys()
    shipped = json.loads((CONFIGS_DIR / "umt5_xxl" / "config.json").read_text())
    with torch.device("meta"):
        state = UMT5EncoderModel(UMT5Config(**shipped)).state_dict()
    assert umt5_config_from_weights(state) == shipped
    assert sum(v.numel() for k, v in state.items() if k != "encoder.embed_tokens.weight") > 5.5e9  # UMT5-XXL encoder


def test_each_a14b_expert_trains_on_its_own_side_of_the_boundary(tmp_path):
    folder = save_tiny_wan_diffusers_folder(tmp_path / "wan", seed=0)
    tiny_wan_parts(1)["denoiser"].save_pretrained(folder / "transformer_2")
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "boundary_ratio": 0.875}))
    every = torch.arange(1000)
    high = load_backbone(folder).objective.sigma(every)
    low = load_backbone(folder, expert="low_noise").objective.sigma(every)
    assert float(high.min()) >= 0.875 and float(low.max()) <= 0.875 + 1e-6
    assert load_backbone(save_tiny_wan_diffusers_folder(tmp_path / "one", seed=0)).objective.sigma_range == (0.0, 1.0)
