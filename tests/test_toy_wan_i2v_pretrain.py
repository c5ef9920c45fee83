"""ShapesWan-I2V: the image-to-video form of the built-in Wan model is ShapesWan widened to diffusers'
WanImageToVideoPipeline input (noisy latents, mask, image latents), starts out predicting exactly what ShapesWan
predicts, is pretrained reproducibly, and ships as a folder diffusers opens."""

import json

import pytest
import torch

from motion_core.toy.builtin import SHAPES_WAN_DIR, SHAPES_WAN_I2V_DIR, SHAPES_WAN_I2V_V2_DIR, resolve_builtin
from motion_core.toy.i2v_condition import (
    GREY,
    condition_clip,
    first_frame_mask,
    image_condition,
    model_input,
    temporal_compression,
)
from motion_core.toy.pretrain.wan_i2v import main as pretrain_i2v
from motion_core.toy.pretrain.wan_i2v_stage import widen_patch_embedding

torch.set_num_threads(1)


def _tiny_transformer():
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    return WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=16, in_channels=4,
                                 out_channels=4, text_dim=32, freq_dim=32, ffn_dim=64, num_layers=2,
                                 rope_max_seq_len=32).eval()


def _tiny_vae(temporal: bool):
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    vae = AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 2, 2], num_res_blocks=1,
                           temperal_downsample=[temporal, temporal], scale_factor_temporal=4 if temporal else 1,
                           scale_factor_spatial=4, latents_mean=[0.1, -0.2, 0.3, 0.0],
                           latents_std=[0.5, 2.0, 1.5, 1.0])
    return vae.eval()


def test_the_widened_patch_embedding_predicts_what_the_text_to_video_model_predicts_at_step_0():
    t2v = _tiny_transformer()
    i2v = widen_patch_embedding(t2v, 9).eval()
    assert i2v.config.in_channels == 9 and i2v.config.out_channels == 4
    assert torch.equal(i2v.patch_embedding.weight[:, 4:], torch.zeros_like(i2v.patch_embedding.weight[:, 4:]))
    g = torch.Generator().manual_seed(1)
    noisy, condition = torch.randn(2, 4, 3, 8, 8, generator=g), torch.randn(2, 5, 3, 8, 8, generator=g)
    states, t = torch.randn(2, 6, 32, generator=g), torch.tensor([900.0, 150.0])
    with torch.no_grad():
        before = t2v(hidden_states=noisy, timestep=t, encoder_hidden_states=states, return_dict=False)[0]
        after = i2v(hidden_states=model_input(noisy, condition), timestep=t, encoder_hidden_states=states,
                    return_dict=False)[0]
        # Once the new channels carry weight, the condition changes the prediction: the check above is not vacuous.
        i2v.patch_embedding.weight[:, 4:].normal_(std=0.1)
        steered = i2v(hidden_states=model_input(noisy, condition), timestep=t, encoder_hidden_states=states,
                      return_dict=False)[0]
    torch.testing.assert_close(after, before, rtol=0, atol=1e-5)
    assert (steered - before).abs().max() > 1e-2


def test_the_condition_clip_is_the_start_image_then_grey_and_the_mask_marks_latent_frame_0_only():
    images = torch.rand(2, 16, 16, 3)
    clip = condition_clip(images, 5)
    assert torch.equal(clip[:, 0], images) and torch.all(clip[:, 1:] == GREY)
    mask = first_frame_mask(2, 9, 1, 4, 4)
    assert mask.shape == (2, 1, 9, 4, 4)
    assert torch.all(mask[:, :, 0] == 1) and torch.all(mask[:, :, 1:] == 0)
    # A real Wan VAE folds 4 frames into a latent frame: 81 frames -> 21 latent frames, 4 mask channels.
    wan = first_frame_mask(1, 81, 4, 2, 2)
    assert wan.shape == (1, 4, 21, 2, 2)
    assert torch.all(wan[:, :, 0] == 1) and torch.all(wan[:, :, 1:] == 0)


@pytest.mark.parametrize("temporal", [False, True], ids=["shapes_wan_vae", "temporal_compression_4x"])
def test_the_condition_equals_what_diffusers_wan_image_to_video_pipeline_prepares(temporal):
    from diffusers import FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline

    vae = _tiny_vae(temporal)
    frames = 5  # 1 + 4k: one latent frame per frame without temporal compression, 2 with it
    pipe = WanImageToVideoPipeline(tokenizer=None, text_encoder=None, vae=vae,
                                   scheduler=FlowMatchEulerDiscreteScheduler())
    image = torch.rand(1, 16, 16, 3, generator=torch.Generator().manual_seed(2))
    pixels = image.permute(0, 3, 1, 2) * 2 - 1  # what the pipeline's video processor hands prepare_latents
    with torch.no_grad():
        _, expected = pipe.prepare_latents(pixels, 1, 4, 16, 16, frames, torch.float32, torch.device("cpu"),
                                           latents=torch.zeros(1, 4, 1, 4, 4))
    ours = image_condition(vae, image, frames)
    t = temporal_compression(vae)
    assert t == (4 if temporal else 1) and ours.shape == (1, t + 4, 2 if temporal else 5, 4, 4)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


def _transformer_weights(folder):
    from safetensors.torch import load_file

    return load_file(folder / "transformer" / "diffusion_pytorch_model.safetensors")


def test_a_tiny_seeded_pretraining_run_is_reproducible_and_writes_an_image_to_video_folder(tmp_path):
    def run(name, seed):
        out = tmp_path / name
        assert pretrain_i2v(["--out", str(out), "--clips", "6", "--steps", "3", "--batch", "2", "--threads", "1",
                             "--precision", "fp32", "--seed", str(seed)]) == 0
        return out

    first, again, other = run("a", 0), run("b", 0), run("c", 1)
    a, b, c = _transformer_weights(first), _transformer_weights(again), _transformer_weights(other)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)
    # Three steps moved the new input channels off zero: the image condition is being learned.
    assert a["patch_embedding.weight"][:, 4:].abs().max() > 0
    index = json.loads((first / "model_index.json").read_text())
    assert index["_class_name"] == "WanImageToVideoPipeline"
    assert index["image_encoder"] == [None, None] and index["image_processor"] == [None, None]
    for part, name in [("vae", "diffusion_pytorch_model.safetensors"), ("text_encoder", "model.safetensors"),
                       ("scheduler", "scheduler_config.json"), ("tokenizer", "tokenizer.json")]:
        assert (first / part / name).read_bytes() == (SHAPES_WAN_DIR / part / name).read_bytes(), part
    card = (first / "README.md").read_text()
    assert "python -m motion_core.toy.pretrain.wan_i2v" in card and "Image-to-video steps: 3" in card


SHIPPED = pytest.mark.parametrize("name, folder", [("shapes_wan_i2v", SHAPES_WAN_I2V_DIR),
                                                   ("shapes_wan_i2v_v2", SHAPES_WAN_I2V_V2_DIR)])


@SHIPPED
def test_the_shipped_folder_loads_in_diffusers_with_nine_input_channels(name, folder):
    from diffusers import WanImageToVideoPipeline, WanTransformer3DModel

    assert resolve_builtin(name) == folder
    transformer = WanTransformer3DModel.from_pretrained(folder, subfolder="transformer")
    assert transformer.config.in_channels == 9 and transformer.config.out_channels == 4
    assert transformer.config.image_dim is None
    assert all(p.dtype == torch.float32 for p in transformer.parameters())
    pipe = WanImageToVideoPipeline.from_pretrained(folder)
    assert pipe.image_encoder is None and pipe.transformer.config.in_channels == 9
    card = (folder / "README.md").read_text()
    assert "## Measured base quality" in card and "python -m motion_core.toy.pretrain.wan_i2v" in card


@SHIPPED
def test_the_engine_conditions_the_shipped_model_exactly_as_its_pretraining_did(name, folder):
    """The pack's WanBackbone (backbones/wan/image_condition.py) and the pretraining (toy/i2v_condition.py) build
    the start-image condition separately; the model only works in the pack if they agree."""
    from motion_core.backbones import load_backbone

    backbone = load_backbone(resolve_builtin(name))
    assert backbone.start_image == "required" and backbone.image_mode == "concat"
    image = torch.rand(64, 64, 3, generator=torch.Generator().manual_seed(4))
    engine = backbone.encode_start_image(image[None], 9, 64, 64)
    torch.testing.assert_close(engine.latents.float(), image_condition(backbone.vae, image[None], 9), rtol=0,
                               atol=1e-5)
