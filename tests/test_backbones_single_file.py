"""Single-file SD1.5 checkpoints (original LDM key layout) + a motion module -> AnimateDiff, fully offline.

A tiny model is written in the original layout (the inverse of diffusers' converter, below) so the whole path runs:
diffusers' conversion fed our local configs, the CLIP conversion, the motion-module merge and the tokenizer from
tokenizer_dir. The shipped SD1.5 configs are exercised by the meta-device tests; here a tiny config folder with the
same layout stands in for them.
"""

import json

import pytest
import torch
from safetensors.torch import save_file

from motion_core.backbones import save_tiny_motion_module_file, tiny_animatediff_backbone
from motion_core.backbones.animatediff.single_file import load_sd15_single_file
from motion_core.backbones.animatediff.tiny import tiny_animatediff_parts
from motion_core.backbones.tiny_clip import tiny_clip_text_encoder, tiny_clip_vae, tiny_tokenizer
from motion_core.errors import ModelLoadError

_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"), ("conv2", "out_layers.3"),
           ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))
_UNET_LAYERS = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
                "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}


def _unet_to_ldm(state, layers_per_block):
    per = layers_per_block + 1
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        head = ".".join(parts[:-1])
        if head in _UNET_LAYERS:
            new = f"{_UNET_LAYERS[head]}.{parts[-1]}"
        elif parts[0] == "down_blocks" and parts[2] == "downsamplers":
            new = f"input_blocks.{(int(parts[1]) + 1) * per}.0.op." + ".".join(parts[5:])
        elif parts[0] == "down_blocks":
            slot = "0" if parts[2] == "resnets" else "1"
            new = f"input_blocks.{1 + int(parts[1]) * per + int(parts[3])}.{slot}." + ".".join(parts[4:])
        elif parts[0] == "mid_block":
            slot = {"resnets.0": 0, "attentions.0": 1, "resnets.1": 2}[f"{parts[1]}.{parts[2]}"]
            new = f"middle_block.{slot}." + ".".join(parts[3:])
        elif parts[2] == "upsamplers":
            block = int(parts[1])
            has_attention = any(k.startswith(f"up_blocks.{block}.attentions.") for k in state)
            new = f"output_blocks.{block * per + layers_per_block}.{2 if has_attention else 1}.conv.{parts[-1]}"
        else:
            slot = "0" if parts[2] == "resnets" else "1"
            new = f"output_blocks.{int(parts[1]) * per + int(parts[3])}.{slot}." + ".".join(parts[4:])
        if ".resnets." in key or key.startswith("mid_block.resnets"):
            for diffusers_name, ldm_name in _RESNET:
                new = new.replace(f".{diffusers_name}.", f".{ldm_name}.")
        out["model.diffusion_model." + new] = value
    return out


def _vae_to_ldm(state, num_blocks):
    out = {}
    for key, value in state.items():
        new = (key.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
               .replace("mid_block.resnets.0", "mid.block_1").replace("mid_block.resnets.1", "mid.block_2")
               .replace("mid_block.attentions.0", "mid.attn_1").replace("group_norm", "norm")
               .replace("to_q", "q").replace("to_k", "k").replace("to_v", "v").replace("to_out.0", "proj_out"))
        parts = new.split(".")
        if parts[1] == "down_blocks":
            tail = "downsample." + ".".join(parts[5:]) if parts[3] == "downsamplers" else "block." + ".".join(parts[4:])
            new = f"{parts[0]}.down.{parts[2]}.{tail}"
        elif parts[1] == "up_blocks":
            block = num_blocks - 1 - int(parts[2])
            tail = "upsample." + ".".join(parts[5:]) if parts[3] == "upsamplers" else "block." + ".".join(parts[4:])
            new = f"{parts[0]}.up.{block}.{tail}"
        out["first_stage_model." + new] = value
    return out


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("single")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the draw order of tiny_animatediff_backbone(0)
        unet2d, _ = tiny_animatediff_parts()
        vae, text_encoder = tiny_clip_vae(), tiny_clip_text_encoder()
    checkpoint = {**_unet_to_ldm(unet2d.state_dict(), 1), **_vae_to_ldm(vae.state_dict(), 2),
                  **{f"cond_stage_model.transformer.text_model.{k.removeprefix('text_model.')}": v
                     for k, v in text_encoder.state_dict().items()}}
    save_file({k: v.contiguous() for k, v in checkpoint.items()}, str(root / "tiny_sd15.safetensors"))
    save_tiny_motion_module_file(root / "mm_tiny.safetensors")
    for name, config in (("unet", unet2d.config), ("vae", vae.config)):
        (root / "configs" / name).mkdir(parents=True)
        (root / "configs" / name / "config.json").write_text(json.dumps(dict(config)))
    text_encoder.config.save_pretrained(root / "configs" / "text_encoder")
    tokenizer = root / "sd1_tokenizer"
    tokenizer.mkdir()
    (tokenizer / "vocab.json").write_text(json.dumps(tiny_tokenizer().get_vocab()))
    (tokenizer / "merges.txt").write_text("#version: 0.2\n")
    return root


def test_sd15_single_file_plus_motion_module_gives_the_same_model(files):
    loaded = load_sd15_single_file(files / "tiny_sd15.safetensors", motion_module=files / "mm_tiny.safetensors",
                                   tokenizer_dir=files / "sd1_tokenizer", config_dir=files / "configs")
    reference = tiny_animatediff_backbone(0)
    assert loaded.family == "animatediff" and loaded.scheduler.config.beta_schedule == "linear"
    text = reference.encode_prompt(["a dog dancing"])
    torch.testing.assert_close(loaded.encode_prompt(["a dog dancing"]), text)
    latents = torch.randn(1, 4, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded.denoise(latents, 20, text), reference.denoise(latents, 20, text))
    frames = torch.rand(1, 2, 16, 16, 3)
    torch.testing.assert_close(loaded.encode_video(frames), reference.encode_video(frames))
    torch.testing.assert_close(loaded.decode_latents(latents), reference.decode_latents(latents))


def test_single_file_needs_a_tokenizer_and_a_motion_module(files):
    with pytest.raises(ModelLoadError, match="needs an AnimateDiff motion module"):
        load_sd15_single_file(files / "tiny_sd15.safetensors", tokenizer_dir=files / "sd1_tokenizer",
                              config_dir=files / "configs")
    with pytest.raises(ModelLoadError, match="tokenizer_dir"):
        load_sd15_single_file(files / "tiny_sd15.safetensors", motion_module=files / "mm_tiny.safetensors",
                              config_dir=files / "configs")


def test_shipped_sd15_configs_refuse_a_checkpoint_of_another_width(files):
    with pytest.raises(ModelLoadError, match="not a Stable Diffusion 1.5"):
        load_sd15_single_file(files / "tiny_sd15.safetensors", motion_module=files / "mm_tiny.safetensors",
                              tokenizer_dir=files / "sd1_tokenizer")
