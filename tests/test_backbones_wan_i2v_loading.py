"""Image-to-video Wan models open as users keep them: ComfyUI's diffusion-model files (Wan 2.1 I2V with its
clip_vision file, the Wan 2.2 I2V A14B experts) in fp16 / fp8 / scaled fp8, and diffusers' WanImageToVideoPipeline
folders (and a TI2V WanPipeline folder with expand_timesteps). Wrong pairs are refused before any large file is read,
each with the fix; the I2V expert boundary and schedules are Wan-AI's, not T2V's.

Tiny models of the real classes are written in the original layouts (tests/wan_samples.py) and must load back into
the same models; nothing may touch the network.
"""

import json
import os
import shutil
import socket

import pytest
import torch
from safetensors.torch import save_file
from wan_samples import PREFIX, _rounded_like_file, write_tiny_wan_i2v_files

from motion_core.backbones import load_backbone
from motion_core.backbones.wan import CONFIGS_DIR, releases
from motion_core.backbones.wan.clip_vision import clip_vision_config, load_clip_vision_file
from motion_core.backbones.wan.files import classify
from motion_core.backbones.wan.keys import diffusers_to_original
from motion_core.backbones.wan.loading import load_wan_backbone, load_wan_components
from motion_core.backbones.wan.single_file import transformer_arch, transformer_config_from_weights
from motion_core.backbones.wan.tiny import save_tiny_wan_i2v_diffusers_folder, tiny_wan_i2v_backbone
from motion_core.errors import ModelLoadError
from motion_core.sampling import SampleRequest, sample_video
from motion_core.sampling.callbacks import SamplingCallbacks

CLIP_FILE = "clip_vision_h_tiny.safetensors"
I2V_FILE = "wan2.1_i2v_480p_tiny_{}.safetensors"
SIZE, FRAMES = 16, 5


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"

    def refuse(*args, **kwargs):
        raise AssertionError("a Wan loader tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    return write_tiny_wan_i2v_files(tmp_path_factory.mktemp("wan_i2v_files"))


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    return save_tiny_wan_i2v_diffusers_folder(tmp_path_factory.mktemp("i2v") / "wan21_i2v", 0, kind="clip")


@pytest.fixture(scope="module")
def experts_folder(tmp_path_factory):
    return save_tiny_wan_i2v_diffusers_folder(tmp_path_factory.mktemp("i2v") / "wan22_i2v", 0, kind="concat",
                                              two_experts=True)


def _files(wan, **more):
    root = wan["root"]
    return {"vae_path": root / "wan_tiny_vae.safetensors", "text_encoder_path": root / "umt5_tiny_fp16.safetensors",
            **more}


def _image(seed):
    return torch.rand(1, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(seed))


def _sample(backbone, image, steps=2):
    request = SampleRequest(prompt="a red square moves right", seed=5, steps=steps, cfg=1.0, frames=FRAMES,
                            width=SIZE, height=SIZE, scheduler="euler", start_image=image)
    return sample_video(backbone, request, SamplingCallbacks(preview="none")).latents


@pytest.fixture
def nothing_big_is_read(monkeypatch):
    """Wrong pairs must be refused from headers and configs: reading any weights fails the test."""
    import motion_core.backbones.wan.clip_vision as clip_vision
    import motion_core.backbones.wan.single_file as single_file

    def forbidden(*args, **kwargs):
        raise AssertionError("weights were read before the pair was judged")

    monkeypatch.setattr(single_file, "read_weights", forbidden)
    monkeypatch.setattr(clip_vision, "read_weights", forbidden)


# ---- what a file is -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch, kind", [("wan2.1_i2v_14b", "transformer_clip"),
                                        ("wan2.2_i2v_a14b_expert", "transformer")])
def test_released_i2v_sizes_are_recognised_from_their_shapes(arch, kind):
    """Wan 2.1 I2V 14B and a Wan 2.2 I2V A14B expert share every block shape and the 36-channel input; only the CLIP
    path (img_emb, k_img / v_img) tells them apart, and ComfyUI's key names say which kind of file it is."""
    from diffusers import WanTransformer3DModel

    shipped = json.loads((CONFIGS_DIR / "wan_transformer" / arch / "config.json").read_text())
    with torch.device("meta"):
        state = WanTransformer3DModel.from_config(shipped).state_dict()
    derived = transformer_config_from_weights(state)
    assert transformer_arch(derived, "any_name.safetensors") == arch
    assert all(derived[k] == shipped[k] for k in derived if k in shipped and k != "patch_size")
    assert classify(diffusers_to_original(state, PREFIX)) == kind


@pytest.mark.parametrize("extra", ["vace_blocks.0.before_proj.weight", "img_emb.emb_pos",
                                   "face_adapter.fuser_blocks.0.k_norm.weight", "control_adapter.conv.weight"])
def test_models_for_other_tasks_are_still_refused_by_name(wan, tmp_path, extra, nothing_big_is_read):
    state = {**wan["i2v_original"], PREFIX + extra: torch.zeros(4, 4)}
    save_file({k: v.half().contiguous() for k, v in state.items()}, str(tmp_path / "wan_other_task.safetensors"))
    with pytest.raises(ModelLoadError, match=r"wan_other_task\.safetensors is a Wan model for another task .*"
                                             r"wan2\.1_i2v_480p_14B_fp16"):
        load_wan_components(tmp_path / "wan_other_task.safetensors", **_files(wan))


# ---- ComfyUI single files ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("precision", ["fp16", "fp8", "fp8_scaled"])
def test_wan21_i2v_file_loads_with_its_clip_vision_file(wan, precision):
    file = {"fp16": "fp16", "fp8": "fp8_e4m3fn", "fp8_scaled": "fp8_scaled"}[precision]
    root = wan["root"]
    parts = load_wan_components(root / I2V_FILE.format(file), **_files(wan, clip_vision_path=root / CLIP_FILE))
    denoiser = parts["denoiser"]
    rounding = {"fp16": "fp16", "fp8": "fp8", "fp8_scaled": "scaled"}[precision]
    expected = _rounded_like_file(wan["i2v_parts"]["denoiser"].state_dict(), rounding)
    torch.testing.assert_close(denoiser.state_dict(), expected, atol=0, rtol=0)
    config = denoiser.config
    assert (config.in_channels, config.image_dim, config.added_kv_proj_dim) == (36, 1280, 128)
    encoder = parts["image_encoder"]
    assert type(encoder).__name__ == "CLIPVisionModelWithProjection"
    loaded = encoder.state_dict()
    assert loaded.keys() == wan["clip_vision_state"].keys(), "every tensor of the file is in the model and back"
    torch.testing.assert_close(loaded, {k: v.half().float() for k, v in wan["clip_vision_state"].items()})
    assert parts["model_info"] == {**parts["model_info"], "expert": None, "boundary_ratio": None, "first_frame": None}
    assert str(root / CLIP_FILE) in parts["model_info"]["files"]


def test_clip_vision_file_builds_the_encoder_it_was_written_from(wan):
    """Same penultimate states as the encoder the file was written from (its fp16 weights): the head count and GELU
    a 1280-wide file means to the loader are the ones the tiny encoder has."""
    from transformers import CLIPVisionModel

    original = wan["i2v_parts"]["image_encoder"]
    reference = CLIPVisionModel(original.config).eval()
    reference.load_state_dict({k: v.half().float() for k, v in original.state_dict().items()})
    encoder = load_clip_vision_file(wan["root"] / CLIP_FILE)
    pixels = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = encoder(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]
        theirs = reference(pixel_values=pixels, output_hidden_states=True).hidden_states[-2]
    assert ours.shape == (1, 257, 1280)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_clip_vision_h_gets_vit_h_14s_config():
    """The real file's shapes (a meta model of the shipped config stands in for its header) select ViT-H/14 as core's
    clip_vision_config_h.json has it: 1280 wide, 32 layers of 16 heads, 14-pixel patches of 224, GELU."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    shipped = json.loads((CONFIGS_DIR / "clip_vision_h" / "config.json").read_text())
    with torch.device("meta"):
        model = CLIPVisionModelWithProjection(CLIPVisionConfig(**shipped))
    config = clip_vision_config({k: tuple(v.shape) for k, v in model.state_dict().items()}, "clip_vision_h.safetensors")
    assert {k: config[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "patch_size",
                                   "image_size", "intermediate_size", "hidden_act", "projection_dim")} == {
        "hidden_size": 1280, "num_hidden_layers": 32, "num_attention_heads": 16, "patch_size": 14, "image_size": 224,
        "intermediate_size": 5120, "hidden_act": "gelu", "projection_dim": 1024}


def test_a_loaded_wan21_i2v_backbone_samples_from_an_image(wan):
    root = wan["root"]
    backbone = load_wan_backbone(root / I2V_FILE.format("fp16"), **_files(wan, clip_vision_path=root / CLIP_FILE))
    assert (backbone.image_mode, backbone.start_image) == ("concat", "required")
    assert not any(p.requires_grad for p in backbone.image_encoder.parameters())
    first, again, other = _sample(backbone, _image(0)), _sample(backbone, _image(0)), _sample(backbone, _image(1))
    assert first.shape == (1, 16, 2, SIZE // 4, SIZE // 4) and torch.isfinite(first).all()
    torch.testing.assert_close(first, again, atol=0, rtol=0)
    assert (first - other).abs().max() > 1e-3, "the start image changes what is sampled"


# ---- Wan 2.2 I2V A14B experts: Wan-AI's I2V boundary ---------------------------------------------------------------
def test_i2v_expert_files_switch_at_wan_ais_i2v_boundary(wan):
    root = wan["root"]
    backbone = load_wan_backbone(root / "wan2.2_i2v_low_noise_tiny_fp16.safetensors", **_files(wan),
                                 other_expert_file=root / "wan2.2_i2v_high_noise_tiny_fp16.safetensors")
    assert backbone.model_info["expert"] == "low_noise"
    assert backbone.model_info["boundary_ratio"] == releases.I2V_BOUNDARY == 0.9
    assert backbone.objective.sigma_range == (0.0, 0.9)
    assert backbone.experts.boundary_ratio == 0.9
    assert backbone.experts.expert_at(900) == "high_noise" and backbone.experts.expert_at(899) == "low_noise"
    torch.testing.assert_close(backbone.experts.high_noise.state_dict(),
                               {k: v.half().float() for k, v in wan["experts"]["high_noise"].state_dict().items()})
    assert backbone.image_encoder is None and backbone.image_mode == "concat"


def test_t2v_expert_files_keep_the_t2v_boundary(wan, tmp_path):
    shutil.copy(wan["root"] / "wan_tiny_fp16.safetensors", tmp_path / "wan2.2_t2v_high_noise_tiny.safetensors")
    info = load_wan_components(tmp_path / "wan2.2_t2v_high_noise_tiny.safetensors", **_files(wan))["model_info"]
    assert (info["expert"], info["boundary_ratio"]) == ("high_noise", releases.T2V_BOUNDARY) == ("high_noise", 0.875)


def test_schedules_and_image_modes_of_the_releases_are_wan_ais():
    """Wan 2.2 i2v_A14B.sample_shift 5.0; Wan 2.1 generate.py: 3.0 for I2V at 480p, 5.0 at 720p."""
    def shift(arch, name):
        folder = CONFIGS_DIR / "wan_scheduler" / releases.single_file_scheduler(arch, name)
        return json.loads((folder / "scheduler_config.json").read_text())["shift"]

    assert shift("wan2.2_i2v_a14b_expert", "wan2.2_i2v_high_noise_14B_fp16.safetensors") == 5.0
    assert shift("wan2.1_i2v_14b", "wan2.1_i2v_480p_14B_fp16.safetensors") == 3.0
    assert shift("wan2.1_i2v_14b", "wan2.1_i2v_720p_14B_fp8_scaled.safetensors") == 5.0
    assert shift("wan2.2_t2v_a14b_expert", "wan2.2_t2v_high_noise_14B_fp16.safetensors") == 12.0
    # Only the TI2V 5B takes its image as the clean first latent frame; sizes Wan-AI did not release stay undecided.
    assert releases.first_frame_conditioning("wan2.2_ti2v_5b") is True
    assert releases.first_frame_conditioning("wan2.2_i2v_a14b_expert") is False
    assert releases.first_frame_conditioning(None) is None


# ---- diffusers folders ------------------------------------------------------------------------------------------
def test_wan21_i2v_folder_loads_as_the_tiny_model_and_samples_the_same(clip_folder):
    backbone = load_wan_backbone(clip_folder)
    reference = tiny_wan_i2v_backbone(0, kind="clip")
    assert type(backbone.image_encoder).__name__ == "CLIPVisionModel"
    torch.testing.assert_close(backbone.image_encoder.state_dict(), reference.image_encoder.state_dict())
    torch.testing.assert_close(backbone.denoiser.state_dict(), reference.denoiser.state_dict())
    assert backbone.model_info["first_frame"] is False and backbone.image_mode == "concat"
    torch.testing.assert_close(_sample(backbone, _image(2)), _sample(reference, _image(2)), atol=1e-5, rtol=1e-5)


def test_a_clip_vision_file_replaces_a_folders_own_encoder(clip_folder, wan):
    parts = load_wan_components(clip_folder, clip_vision_path=wan["root"] / CLIP_FILE)
    assert type(parts["image_encoder"]).__name__ == "CLIPVisionModelWithProjection"


def test_i2v_experts_folder_switches_at_its_boundary_and_defaults_to_the_i2v_one(experts_folder, tmp_path):
    backbone = load_wan_backbone(experts_folder, expert="low_noise", load_both_experts=True)
    assert backbone.model_info["boundary_ratio"] == 0.9 and backbone.experts.boundary_ratio == 0.9
    assert backbone.image_encoder is None and backbone.image_mode == "concat"
    folder = shutil.copytree(experts_folder, tmp_path / "no_ratio")
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "boundary_ratio": None}))
    assert load_wan_components(folder)["model_info"]["boundary_ratio"] == releases.I2V_BOUNDARY


def test_ti2v_folder_with_expand_timesteps_takes_the_image_as_first_frame(tmp_path):
    folder = save_tiny_wan_i2v_diffusers_folder(tmp_path / "ti2v", 0, kind="first_frame")
    backbone = load_wan_backbone(folder)
    assert backbone.first_frame_conditioning is True
    assert (backbone.image_mode, backbone.start_image) == ("first_frame", "optional")


# ---- wrong pairs: clear errors before anything big is read -------------------------------------------------------
def test_wan21_i2v_without_its_clip_vision_file_names_the_file(wan, nothing_big_is_read):
    with pytest.raises(ModelLoadError, match=r"wan2\.1_i2v_480p_tiny_fp16\.safetensors is a Wan 2\.1 image-to-video "
                                             r"model.*clip_vision_h\.safetensors from models/clip_vision"):
        load_wan_components(wan["root"] / I2V_FILE.format("fp16"), **_files(wan))


@pytest.mark.parametrize("model", ["wan_tiny_fp16.safetensors", "wan2.2_i2v_high_noise_tiny_fp16.safetensors"])
def test_a_clip_vision_file_for_a_model_that_reads_none_is_refused(wan, model, nothing_big_is_read):
    with pytest.raises(ModelLoadError, match=r"clip_vision_h_tiny\.safetensors is a CLIP vision encoder, but "
                                             r".* reads no CLIP features.*set clip_vision to none"):
        load_wan_components(wan["root"] / model, **_files(wan, clip_vision_path=wan["root"] / CLIP_FILE))


def test_folders_without_their_encoder_or_with_a_stray_one_are_refused(clip_folder, experts_folder, wan, tmp_path):
    folder = shutil.copytree(clip_folder, tmp_path / "no_encoder", ignore=shutil.ignore_patterns("image_encoder"))
    with pytest.raises(ModelLoadError, match=r"reads CLIP vision features .* no image_encoder/: choose "
                                             r"clip_vision_h\.safetensors"):
        load_wan_components(folder)
    with pytest.raises(ModelLoadError, match=r"reads no CLIP features.*set clip_vision to none"):
        load_wan_components(experts_folder, clip_vision_path=wan["root"] / CLIP_FILE)


def test_files_that_are_not_clip_vision_h_are_refused_as_clip_vision(wan, tmp_path, nothing_big_is_read):
    root, i2v = wan["root"], wan["root"] / I2V_FILE.format("fp16")

    def refused(clip, pattern):
        with pytest.raises(ModelLoadError, match=pattern):
            load_wan_components(i2v, **_files(wan, clip_vision_path=clip))
    refused(root / "wan_tiny_vae.safetensors", r"wan_tiny_vae\.safetensors is a Wan VAE .*models/vae.*but a CLIP "
                                               r"vision encoder .* was expected.*models/clip_vision")
    state = wan["clip_vision_state"]
    narrow = {k: v[..., :1024].contiguous() if v.dim() and v.shape[-1] == 1280 else v for k, v in state.items()}
    narrow = {k: v[:1024].contiguous() if v.dim() and v.shape[0] == 1280 else v for k, v in narrow.items()}
    save_file(narrow, str(tmp_path / "clip_vision_l.safetensors"))
    refused(tmp_path / "clip_vision_l.safetensors", r"gives 1024-wide image features but .* reads 1280-wide")
    save_file({"visual." + k: v for k, v in state.items()}, str(tmp_path / "open_clip.safetensors"))
    refused(tmp_path / "open_clip.safetensors", r"OpenCLIP's own layout")
    siglip = {k: v for k, v in state.items() if "class_embedding" not in k}
    save_file(siglip, str(tmp_path / "siglip.safetensors"))
    refused(tmp_path / "siglip.safetensors", r"without CLIP's class token")
    crafted = {**state, "vision_model.encoder.layers.100000.layer_norm1.weight": torch.ones(1280)}
    save_file(crafted, str(tmp_path / "crafted.safetensors"))
    refused(tmp_path / "crafted.safetensors", r"crafted\.safetensors is not a usable CLIP vision encoder.*numbered")
    data = (root / CLIP_FILE).read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    refused(tmp_path / "cut.safetensors", r"cut\.safetensors is not a complete \.safetensors file")


def test_a_t2v_expert_is_not_the_second_expert_of_an_i2v_one(wan, tmp_path):
    shutil.copy(wan["root"] / "wan_tiny_fp16.safetensors", tmp_path / "wan2.2_t2v_low_noise_tiny.safetensors")
    with pytest.raises(ModelLoadError, match=r"experts differ \(in_channels 36 vs 16\)"):
        load_wan_backbone(wan["root"] / "wan2.2_i2v_high_noise_tiny_fp16.safetensors", **_files(wan),
                          other_expert_file=tmp_path / "wan2.2_t2v_low_noise_tiny.safetensors")


def test_load_backbone_passes_the_clip_vision_file_on(wan):
    root = wan["root"]
    backbone = load_backbone(root / I2V_FILE.format("fp8_e4m3fn"), vae=root / "wan_tiny_vae.safetensors",
                             text_encoder=root / "umt5_tiny_fp16.safetensors", clip_vision=root / CLIP_FILE)
    assert backbone.image_encoder is not None and backbone.family == "wan"
