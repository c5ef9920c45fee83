"""Wan LoRA layouts: ComfyUI's native layout (written and read) and the ones in circulation (read): ai-toolkit's,
musubi-tuner's (and its Wan-Fun spelling), diffusers/PEFT. Each foreign file is built here from the DESIGN's key rules
with a table of our own, not with the code under test, and must read back to the same merged deltas."""

import json
import re

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from motion_core.backbones.wan.tiny import tiny_wan_backbone
from motion_core.errors import InvalidInputError
from motion_core.lora import detect_format, load_lora, save_lora
from motion_core.lora.merge import lora_delta
from motion_core.lora.synthetic import random_lora

TARGETS = ("temporal_attn", "spatial_cross_attn", "spatial_ff")
# diffusers (WanTransformer3DModel) -> original Wan names inside a block, as DESIGN.md states them
BLOCK = {"attn1.to_q": "self_attn.q", "attn1.to_k": "self_attn.k", "attn1.to_v": "self_attn.v",
         "attn1.to_out.0": "self_attn.o", "attn2.to_q": "cross_attn.q", "attn2.to_k": "cross_attn.k",
         "attn2.to_v": "cross_attn.v", "attn2.to_out.0": "cross_attn.o", "ffn.net.0.proj": "ffn.0",
         "ffn.net.2": "ffn.2"}


def original(module):
    block, rest = re.match(r"^blocks\.(\d+)\.(.+)$", module).groups()
    return f"blocks.{block}.{BLOCK[rest]}"


@pytest.fixture(scope="module")
def backbone():
    return tiny_wan_backbone()


@pytest.fixture(scope="module")
def lora(backbone):
    """Rank 4, alpha 8, one module with its own alpha: a scale other than 1 everywhere, and not uniform."""
    return random_lora(backbone, TARGETS, rank=4, alpha=8.0, alpha_pattern={"blocks.1.ffn.net.2": 2.0}, name="dance")


@pytest.fixture(scope="module")
def lora_scale_one(backbone):
    """For layouts that carry no alpha (the reader, like ComfyUI, then uses scale 1)."""
    return random_lora(backbone, TARGETS, rank=4, alpha=4.0, seed=1)


def assert_same_deltas(loaded, lora, backbone):
    weights = dict(backbone.denoiser.named_modules())
    assert loaded.modules() == lora.modules()
    for module in lora.modules():
        weight = weights[module].weight
        assert torch.equal(lora_delta(loaded, module, weight), lora_delta(lora, module, weight)), module


def comfy_layout(lora, prefix="diffusion_model.", down="lora_A.weight", up="lora_B.weight", alpha=True):
    out = {}
    for module in lora.modules():
        a, b = lora.weights(module)
        stem = prefix + original(module)
        out[f"{stem}.{down}"], out[f"{stem}.{up}"] = a, b
        if alpha:
            out[f"{stem}.alpha"] = torch.tensor(lora.module_alpha(module))
    return out


def musubi_layout(lora, prefix="lora_unet_"):
    out = {}
    for module in lora.modules():
        a, b = lora.weights(module)
        stem = prefix + original(module).replace(".", "_")
        out[f"{stem}.lora_down.weight"], out[f"{stem}.lora_up.weight"] = a, b
        out[f"{stem}.alpha"] = torch.tensor(lora.module_alpha(module))
    return out


def diffusers_layout(lora):
    out = {}
    for module in lora.modules():
        a, b = lora.weights(module)
        out[f"transformer.{module}.lora_A.weight"], out[f"transformer.{module}.lora_B.weight"] = a, b
    return out


def test_comfyui_save_names_every_module_as_comfys_wan_loader_does(lora, tmp_path):
    path = save_lora(lora, tmp_path / "dance.safetensors", format="comfyui")
    with safe_open(str(path), "pt") as f:
        keys, header = set(f.keys()), f.metadata()
        alpha = f.get_tensor("diffusion_model.blocks.1.ffn.2.alpha")
    assert keys == set(comfy_layout(lora))
    assert alpha.ndim == 0 and float(alpha) == 2.0 and header["family"] == "wan" and header["name"] == "dance"
    assert detect_format(keys) == "comfyui"


def test_comfyui_save_round_trips_deltas_alphas_and_metadata(lora, backbone, tmp_path):
    loaded = load_lora(save_lora(lora, tmp_path / "dance.safetensors", format="comfyui"))
    assert_same_deltas(loaded, lora, backbone)
    assert (loaded.name, loaded.kind, loaded.family, loaded.alpha, loaded.base_fingerprint) == (
        "dance", "motion", "wan", 8.0, lora.base_fingerprint)
    assert loaded.metadata["alpha_pattern"] == {"blocks.1.ffn.net.2": 2.0}


@pytest.mark.parametrize("layout, detected, source", [
    ("comfyui_lora_up_down", "comfyui", "comfyui"),
    ("comfyui_model_prefix", "comfyui", "comfyui"),
    ("musubi", "comfyui", "musubi"),
    ("musubi_wan_fun", "comfyui", "musubi"),
])
def test_wan_layouts_with_alpha_read_to_the_same_deltas(layout, detected, source, lora, backbone, tmp_path):
    tensors = {
        "comfyui_lora_up_down": lambda: comfy_layout(lora, down="lora_down.weight", up="lora_up.weight"),
        "comfyui_model_prefix": lambda: comfy_layout(lora, prefix="model.diffusion_model."),
        "musubi": lambda: musubi_layout(lora),
        "musubi_wan_fun": lambda: musubi_layout(lora, prefix="lora_unet__"),
    }[layout]()
    save_file(tensors, str(tmp_path / f"{layout}.safetensors"))
    assert detect_format(tensors) == detected
    loaded = load_lora(tmp_path / f"{layout}.safetensors")
    assert_same_deltas(loaded, lora, backbone)
    assert (loaded.family, loaded.metadata["source_format"]) == ("wan", source)


@pytest.mark.parametrize("layout, detected", [
    ("ai_toolkit_original", "comfyui"),   # diffusion_model.blocks.0.self_attn.q.lora_A.weight, no alpha
    ("ai_toolkit_bare", "comfyui"),       # blocks.0.self_attn.q.lora_A.weight
    ("diffusers_peft", "canonical"),      # transformer.blocks.0.attn1.to_q.lora_A.weight
])
def test_wan_layouts_without_alpha_read_with_scale_one(layout, detected, lora_scale_one, backbone, tmp_path):
    tensors = {
        "ai_toolkit_original": lambda: comfy_layout(lora_scale_one, alpha=False),
        "ai_toolkit_bare": lambda: comfy_layout(lora_scale_one, prefix="", alpha=False),
        "diffusers_peft": lambda: diffusers_layout(lora_scale_one),
    }[layout]()
    save_file(tensors, str(tmp_path / f"{layout}.safetensors"))
    assert detect_format(tensors) == detected
    loaded = load_lora(tmp_path / f"{layout}.safetensors")
    assert loaded.alpha == 4.0 and not loaded.metadata["alpha_pattern"]
    assert_same_deltas(loaded, lora_scale_one, backbone)


def test_diffusers_peft_wan_file_takes_alpha_from_its_adapter_metadata(lora_scale_one, backbone, tmp_path):
    doubled = lora_scale_one.with_metadata(alpha=8.0)
    header = {"lora_adapter_metadata": json.dumps({"r": 4, "lora_alpha": 8})}
    save_file(diffusers_layout(doubled), str(tmp_path / "peft.safetensors"), metadata=header)
    assert_same_deltas(load_lora(tmp_path / "peft.safetensors"), doubled, backbone)


def test_our_kohya_export_of_a_wan_lora_stays_kohya(lora, backbone, tmp_path):
    path = save_lora(lora, tmp_path / "k.safetensors", format="kohya")
    with safe_open(str(path), "pt") as f:
        assert detect_format(f.keys()) == "kohya"
    names = [n for n, _ in backbone.denoiser.named_modules()]
    assert_same_deltas(load_lora(path, names), lora, backbone)


def test_a_text_encoder_part_is_reported_not_dropped_silently(lora, backbone, tmp_path):
    tensors = comfy_layout(lora)
    tensors["text_encoders.umt5xxl.transformer.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight"] = \
        torch.zeros(4, 8)
    tensors["lora_te_encoder_block_0_layer_0_SelfAttention_q.lora_down.weight"] = torch.zeros(4, 8)
    save_file(tensors, str(tmp_path / "with_te.safetensors"))
    loaded = load_lora(tmp_path / "with_te.safetensors")
    assert loaded.metadata["extra"]["skipped_components"] == ["text_encoder"]
    assert_same_deltas(loaded, lora, backbone)


def test_keys_matching_no_wan_module_are_an_error_naming_them(lora, tmp_path):
    tensors = comfy_layout(lora)
    tensors["diffusion_model.blocks.0.self_attn.qkv.lora_A.weight"] = torch.zeros(4, 128)
    save_file(tensors, str(tmp_path / "odd.safetensors"))
    with pytest.raises(InvalidInputError, match=r"match no Wan module: diffusion_model\.blocks\.0\.self_attn\.qkv"):
        load_lora(tmp_path / "odd.safetensors")


def test_full_weight_diff_patches_are_carried_and_a_misfit_is_an_error_naming_it(lora, backbone, tmp_path):
    """Changed by issue 38 (item 16): core's .diff patches are now kept and merged, not refused at load. A patch
    whose shape fits no parameter is refused when the LoRA is fitted to the model, naming it; DoRA parts, which
    change what the factors mean, are still refused at load."""
    from motion_core.errors import LoraMismatchError
    from motion_core.lora import check_lora_fits

    tensors = comfy_layout(lora)
    tensors["diffusion_model.blocks.0.self_attn.norm_q.diff"] = torch.zeros(1, 128)
    save_file(tensors, str(tmp_path / "diff.safetensors"))
    loaded = load_lora(tmp_path / "diff.safetensors")
    assert loaded.patched_modules() == ["blocks.0.attn1.norm_q"]
    with pytest.raises(LoraMismatchError, match=r"unet\.blocks\.0\.attn1\.norm_q\.diff with shape \(1, 128\)"):
        check_lora_fits(backbone.denoiser, loaded)
    tensors["diffusion_model.blocks.0.self_attn.q.dora_scale"] = torch.ones(128, 1)
    save_file(tensors, str(tmp_path / "dora.safetensors"))
    with pytest.raises(InvalidInputError, match=r"cannot apply: diffusion_model\.blocks\.0\.self_attn\.q\.dora_scale"):
        load_lora(tmp_path / "dora.safetensors")


def test_comfyui_format_refuses_a_lora_of_another_family_with_the_reason(lora, tmp_path):
    with pytest.raises(InvalidInputError, match="native layout for Wan LoRAs; this LoRA is for animatediff"):
        save_lora(lora.with_metadata(family="animatediff"), tmp_path / "x.safetensors", format="comfyui")
    assert not (tmp_path / "x.safetensors").exists()


def test_comfyui_format_refuses_modules_wan_does_not_have(backbone, tmp_path):
    from motion_core.lora import MotionLora

    odd = MotionLora({"unet.down_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(2, 8),
                      "unet.down_blocks.0.attn1.to_q.lora_B.weight": torch.zeros(8, 2)}, {"name": "sd"})
    with pytest.raises(InvalidInputError, match="no counterpart in ComfyUI's Wan layout"):
        save_lora(odd, tmp_path / "x.safetensors", format="comfyui")
