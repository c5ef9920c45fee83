"""ShapesWan's pretraining command writes a WanPipeline folder of the real Wan classes that the pack's ordinary Wan
loader opens, with a tokenizer that keeps every world word and trigger whole."""

import json

import pytest
import torch

from motion_core.backbones import detect_family, load_backbone
from motion_core.errors import InvalidInputError
from motion_core.toy.builtin import clip_frames, resolve_builtin
from motion_core.toy.captions import TRIGGER_EXAMPLES, WORLD_WORDS, caption
from motion_core.toy.pretrain.wan import main as pretrain_wan
from motion_core.toy.pretrain.wan_architecture import WAN_MAX_TOKENS, WAN_NUM_FRAMES, build_wan_tokenizer


@pytest.fixture(scope="module")
def smoke_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("wan") / "shapes_wan"
    assert pretrain_wan(["--out", str(out), "--clips", "6", "--vae-steps", "2", "--decoder-steps", "2",
                         "--t2v-steps", "2", "--batch", "2", "--threads", "1"]) == 0
    return out


def test_pretraining_writes_a_wan_pipeline_folder_of_the_real_classes(smoke_model):
    index = json.loads((smoke_model / "model_index.json").read_text())
    assert index["_class_name"] == "WanPipeline"
    assert index["transformer"] == ["diffusers", "WanTransformer3DModel"]
    assert index["vae"] == ["diffusers", "AutoencoderKLWan"]
    assert index["text_encoder"] == ["transformers", "UMT5EncoderModel"]
    assert detect_family(smoke_model) == "wan"
    vae_config = json.loads((smoke_model / "vae" / "config.json").read_text())
    # The measured latent statistics travel in the VAE's config, where WanPipeline and WanBackbone read them.
    assert len(vae_config["latents_mean"]) == len(vae_config["latents_std"]) == vae_config["z_dim"]
    assert all(s > 0 for s in vae_config["latents_std"])
    card = (smoke_model / "README.md").read_text()
    assert "python -m motion_core.toy.pretrain.wan" in card and "Text-to-video steps: 2" in card


def test_the_pack_trains_and_samples_on_it_at_nine_frames(smoke_model):
    backbone = load_backbone(smoke_model)
    assert backbone.family == "wan" and backbone.temporal_compression == 1
    assert clip_frames(backbone) == WAN_NUM_FRAMES
    assert backbone.frames_up_to(8) == 5  # e.g. the Train node's short preview: a length this VAE reads whole
    video = torch.rand(1, WAN_NUM_FRAMES, 64, 64, 3)
    latents = backbone.encode_video(video)
    assert latents.shape == (1, 4, WAN_NUM_FRAMES, 16, 16)
    states = backbone.encode_prompt([caption("red", "square", "left")])
    assert backbone.denoise(latents, 500.0, states).shape == latents.shape
    assert backbone.decode_latents(latents).shape == (1, WAN_NUM_FRAMES, 64, 64, 3)


def test_a_wan_vae_without_temporal_compression_still_refuses_a_clip_it_would_cut(smoke_model):
    # diffusers reads the first frame, then chunks of 4: an 8-frame clip would silently lose its last 3 frames.
    backbone = load_backbone(smoke_model)
    with pytest.raises(InvalidInputError, match=r"1 \+ 4·k frames \(e.g. 5 or 9\)"):
        backbone.encode_video(torch.rand(1, 8, 64, 64, 3))


def test_every_world_word_and_trigger_is_one_token_and_the_longest_caption_fits():
    tokenizer = build_wan_tokenizer()
    for word in (*WORLD_WORDS, *TRIGGER_EXAMPLES):
        assert tokenizer.tokenize(word) == ["▁" + word], word
    longest = caption("purple", "triangle", "down_left", companion=("white", "circle"))
    assert len(tokenizer(longest).input_ids) <= WAN_MAX_TOKENS
    assert tokenizer.tokenize("a blue circle moves like V*")[-1] == "▁V*"
    # An unknown word falls back to characters instead of vanishing.
    assert tokenizer.tokenize("qqq") == ["▁", "q", "q", "q"]


def test_refining_a_finished_model_changes_only_its_decoder(smoke_model, tmp_path):
    import shutil

    from safetensors.torch import load_file

    copy = tmp_path / "refined"
    shutil.copytree(smoke_model, copy)
    assert pretrain_wan(["--refine-decoder", str(copy), "--clips", "6", "--decoder-steps", "2", "--threads", "1"]) == 0

    def weights(folder, part):
        return load_file(folder / part / "diffusion_pytorch_model.safetensors")

    old_vae, new_vae = weights(smoke_model, "vae"), weights(copy, "vae")
    changed = {k for k in old_vae if not torch.equal(old_vae[k], new_vae[k])}
    assert changed and all(k.startswith(("decoder.", "post_quant_conv.")) for k in changed), changed
    old_t, new_t = weights(smoke_model, "transformer"), weights(copy, "transformer")
    assert all(torch.equal(old_t[k], new_t[k]) for k in old_t)
    assert "--refine-decoder FOLDER --decoder-steps 2" in (copy / "README.md").read_text()


def test_built_in_names_resolve_to_the_shipped_folders():
    assert resolve_builtin("shapes_t2v").name == "shapes_t2v"
    assert resolve_builtin("shapes_wan").name == "shapes_wan"
    assert str(resolve_builtin("/some/folder")) == "/some/folder"


def test_a_larger_training_shift_draws_higher_noise_from_the_same_indices():
    """--train-shift moves the training σ law toward pure noise (where the samples' layout is decided) without
    changing the random draws: the same indices, each mapped to a σ at least as high; no shift = the model's own."""
    from motion_core.toy.pretrain.wan_architecture import build_wan_text_encoder, build_wan_transformer
    from motion_core.toy.pretrain.wan_t2v_stage import train_wan_t2v

    torch.set_num_threads(1)
    latents = torch.randn(4, 4, WAN_NUM_FRAMES, 4, 4, generator=torch.Generator().manual_seed(0))
    tokenizer = build_wan_tokenizer()
    seen = {}
    for shift in (None, 2.0, 6.0):
        torch.manual_seed(0)
        transformer = build_wan_transformer()
        timesteps = []
        transformer.register_forward_pre_hook(lambda _m, _a, kw: timesteps.append(kw["timestep"].clone()),
                                              with_kwargs=True)
        train_wan_t2v(latents, ["a red circle moves left"] * 4, tokenizer, steps=3, max_minutes=5, batch=2,
                      train_shift=shift, init=(transformer, build_wan_text_encoder(tokenizer)), log=lambda _m: None)
        seen[shift] = torch.cat(timesteps)
    assert torch.equal(seen[None], seen[2.0])
    assert (seen[6.0] >= seen[2.0]).all() and (seen[6.0] > seen[2.0]).any()
