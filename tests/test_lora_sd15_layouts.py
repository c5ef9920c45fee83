"""SD1.5 (AnimateDiff family) appearance LoRAs named with the original Stable Diffusion (LDM) module names: kohya's
``lora_unet_input_blocks_...`` and ComfyUI's own ``diffusion_model.input_blocks...`` (lora_up/lora_down or
lora_A/lora_B, alpha). Each file is written here with an inverse mapping of our own, built by walking the blocks the
way the original UNet is assembled (not with the code under test), and must read back to the same merged deltas.
The rule is checked on the real SD1.5 UNet too, and against ComfyUI's own table where ComfyUI is provisioned."""

import json
import subprocess
import sys

import pytest
import torch
from harness.provision import comfyui_dir
from safetensors.torch import save_file

from motion_core.backbones.animatediff import CONFIGS_DIR
from motion_core.backbones.animatediff.tiny import tiny_animatediff_backbone
from motion_core.errors import InvalidInputError, LoraMismatchError
from motion_core.lora import check_lora_fits, detect_format, load_lora
from motion_core.lora.formats.sd15_comfy import BIAS_AND_NORM_PATCHES
from motion_core.lora.formats.sd15_original import (
    layout_from_config,
    layout_from_module_names,
    original_name,
    original_names,
)
from motion_core.lora.merge import lora_delta
from motion_core.lora.synthetic import random_lora

TARGETS = ("spatial_self_attn", "spatial_cross_attn", "spatial_ff")
RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1", "norm2": "out_layers.0",
          "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}


def ldm_prefixes(config):
    """diffusers block-child prefix -> LDM prefix, enumerated in the order the original UNet appends its layers."""
    per_block = config["layers_per_block"]
    down, up = config["down_block_types"], config["up_block_types"]
    table, n = {}, 1
    for b, kind in enumerate(down):
        for j in range(per_block):
            table[f"down_blocks.{b}.resnets.{j}"] = f"input_blocks.{n}.0"
            if "CrossAttn" in kind:
                table[f"down_blocks.{b}.attentions.{j}"] = f"input_blocks.{n}.1"
            n += 1
        if b < len(down) - 1:
            table[f"down_blocks.{b}.downsamplers.0.conv"] = f"input_blocks.{n}.0.op"
            n += 1
    table.update({"mid_block.resnets.0": "middle_block.0", "mid_block.attentions.0": "middle_block.1",
                  "mid_block.resnets.1": "middle_block.2"})
    n = 0
    for b, kind in enumerate(up):
        for j in range(per_block + 1):
            table[f"up_blocks.{b}.resnets.{j}"] = f"output_blocks.{n}.0"
            if "CrossAttn" in kind:
                table[f"up_blocks.{b}.attentions.{j}"] = f"output_blocks.{n}.1"
            if j == per_block and b < len(up) - 1:
                table[f"up_blocks.{b}.upsamplers.0.conv"] = f"output_blocks.{n}.{2 if 'CrossAttn' in kind else 1}.conv"
            n += 1
    return table


def ldm(module, config):
    for prefix, original in ldm_prefixes(config).items():
        if module == prefix or module.startswith(prefix + "."):
            rest = module[len(prefix):]
            if ".resnets." in prefix and rest:
                head, _, tail = rest[1:].partition(".")
                rest = "." + RESNET[head] + (f".{tail}" if tail else "")
            return original + rest
    raise KeyError(module)


@pytest.fixture(scope="module")
def backbone():
    return tiny_animatediff_backbone()


@pytest.fixture(scope="module")
def module_names(backbone):
    return [n for n, _ in backbone.denoiser.named_modules()]


@pytest.fixture(scope="module")
def lora(backbone):
    """Rank 4, alpha 8 and one module with its own alpha: a scale other than 1, and not uniform."""
    odd = "up_blocks.1.attentions.1.transformer_blocks.0.ff.net.2"
    return random_lora(backbone, TARGETS, rank=4, alpha=8.0, alpha_pattern={odd: 2.0}, kind="appearance",
                       name="look")


def assert_same_deltas(loaded, lora, backbone):
    modules = dict(backbone.denoiser.named_modules())
    assert loaded.modules() == lora.modules()
    for module in lora.modules():
        weight = modules[module].weight
        assert torch.equal(lora_delta(loaded, module, weight), lora_delta(lora, module, weight)), module


def kohya_ldm_layout(lora, config, alpha=True):
    out = {}
    for module in lora.modules():
        a, b = lora.weights(module)
        stem = "lora_unet_" + ldm(module, config).replace(".", "_")
        out[f"{stem}.lora_down.weight"], out[f"{stem}.lora_up.weight"] = a, b
        if alpha:
            out[f"{stem}.alpha"] = torch.tensor(lora.module_alpha(module))
    return out


def comfy_layout(lora, config, down="lora_down.weight", up="lora_up.weight", alpha=True):
    out = {}
    for module in lora.modules():
        a, b = lora.weights(module)
        stem = "diffusion_model." + ldm(module, config)
        out[f"{stem}.{down}"], out[f"{stem}.{up}"] = a, b
        if alpha:
            out[f"{stem}.alpha"] = torch.tensor(lora.module_alpha(module))
    return out


def write(tmp_path, name, tensors):
    save_file(tensors, str(tmp_path / f"{name}.safetensors"))
    return tmp_path / f"{name}.safetensors"


@pytest.mark.parametrize("layout, detected, source", [
    ("kohya_original_names", "kohya", "kohya"),
    ("comfyui_lora_up_down", "comfyui", "comfyui"),
    ("comfyui_lora_A_B", "comfyui", "comfyui"),
])
def test_ldm_named_layouts_read_to_the_same_deltas(layout, detected, source, lora, backbone, module_names, tmp_path):
    config = dict(backbone.denoiser.config)
    tensors = {
        "kohya_original_names": lambda: kohya_ldm_layout(lora, config),
        "comfyui_lora_up_down": lambda: comfy_layout(lora, config),
        "comfyui_lora_A_B": lambda: comfy_layout(lora, config, down="lora_A.weight", up="lora_B.weight"),
    }[layout]()
    assert detect_format(tensors) == detected
    loaded = load_lora(write(tmp_path, layout, tensors), module_names)
    assert_same_deltas(loaded, lora, backbone)
    assert (loaded.kind, loaded.metadata["source_format"], loaded.alpha) == ("appearance", source, 8.0)
    check_lora_fits(backbone.denoiser, loaded, family="animatediff")


def test_comfyui_layout_without_alpha_reads_with_scale_one(backbone, module_names, tmp_path):
    plain = random_lora(backbone, TARGETS, rank=4, alpha=4.0, seed=1, kind="appearance")
    tensors = comfy_layout(plain, dict(backbone.denoiser.config), alpha=False)
    loaded = load_lora(write(tmp_path, "no_alpha", tensors), module_names)
    assert loaded.alpha == 4.0 and not loaded.metadata["alpha_pattern"]
    assert_same_deltas(loaded, plain, backbone)


def test_a_kohya_text_encoder_part_is_reported_not_applied(lora, backbone, module_names, tmp_path):
    tensors = kohya_ldm_layout(lora, dict(backbone.denoiser.config))
    tensors["lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight"] = torch.zeros(4, 32)
    tensors["lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight"] = torch.zeros(32, 4)
    loaded = load_lora(write(tmp_path, "with_te", tensors), module_names)
    assert loaded.metadata["extra"]["skipped_components"] == ["text_encoder"]
    assert_same_deltas(loaded, lora, backbone)


def test_comfyui_train_node_extras_are_reported_not_applied(lora, backbone, module_names, tmp_path):
    """Core's Train LoRA node adds a full bias patch per layer and a vector patch per norm; its extract node may add
    a text-encoder part. The LoRA factors load; the rest is named in the report."""
    tensors = comfy_layout(lora, dict(backbone.denoiser.config))
    tensors["diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_out.0.diff_b"] = torch.zeros(32)
    tensors["diffusion_model.input_blocks.1.1.transformer_blocks.0.norm1.diff"] = torch.zeros(32)
    tensors["text_encoders.clip_l.transformer.text_model.encoder.layers.0.self_attn.q_proj.lora_up.weight"] = \
        torch.zeros(32, 4)
    loaded = load_lora(write(tmp_path, "trained_in_comfy", tensors), module_names)
    assert loaded.metadata["extra"]["skipped_components"] == sorted([BIAS_AND_NORM_PATCHES, "text_encoder"])
    assert_same_deltas(loaded, lora, backbone)


def test_full_weight_patches_of_matrices_are_an_error_naming_them(lora, backbone, module_names, tmp_path):
    tensors = comfy_layout(lora, dict(backbone.denoiser.config))
    tensors["diffusion_model.input_blocks.1.1.proj_in.diff"] = torch.zeros(32, 32, 1, 1)
    with pytest.raises(InvalidInputError, match=r"cannot apply: diffusion_model\.input_blocks\.1\.1\.proj_in\.diff"):
        load_lora(write(tmp_path, "full_diff", tensors), module_names)


@pytest.mark.parametrize("layout, key", [
    ("comfyui", "diffusion_model.input_blocks.7.1.transformer_blocks.0.attn1.to_q"),   # real SD1.5, not the tiny
    ("comfyui", "diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_qkv"),
    ("kohya", "lora_unet_output_blocks_11_1_transformer_blocks_0_attn2_to_k"),
])
def test_keys_naming_no_module_of_the_model_are_an_error_naming_them(layout, key, lora, backbone, module_names,
                                                                      tmp_path):
    tensors = (comfy_layout if layout == "comfyui" else kohya_ldm_layout)(lora, dict(backbone.denoiser.config))
    tensors[f"{key}.lora_down.weight"], tensors[f"{key}.lora_up.weight"] = torch.zeros(4, 32), torch.zeros(32, 4)
    with pytest.raises(LoraMismatchError, match=key.replace(".", r"\.")):
        load_lora(write(tmp_path, "odd", tensors), module_names)


def test_without_a_model_ldm_names_resolve_against_the_released_sd15_unet(tmp_path):
    """A loader node with no model wired in reads kohya and ComfyUI SD1.5 files against the real SD1.5 UNet."""
    from safetensors.torch import save_file

    from motion_core.lora.state import canonical_key

    down, up = torch.randn(4, 320), torch.randn(320, 4)
    kohya_path = tmp_path / "kohya_original.safetensors"
    save_file({"lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q.lora_down.weight": down,
               "lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q.lora_up.weight": up,
               "lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q.alpha": torch.tensor(4.0)},
              str(kohya_path))
    comfy_path = tmp_path / "comfy_sd15.safetensors"
    save_file({"diffusion_model.output_blocks.11.1.transformer_blocks.0.attn1.to_q.lora_down.weight": down,
               "diffusion_model.output_blocks.11.1.transformer_blocks.0.attn1.to_q.lora_up.weight": up},
              str(comfy_path))
    kohya_lora, comfy_lora = load_lora(kohya_path), load_lora(comfy_path)
    first = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    last = "up_blocks.3.attentions.2.transformer_blocks.0.attn1.to_q"
    assert torch.equal(kohya_lora.tensors[canonical_key(first, "A")], down)
    assert torch.equal(comfy_lora.tensors[canonical_key(last, "B")], up)


def test_a_file_naming_blocks_the_released_unet_lacks_is_an_error_without_a_model(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "odd.safetensors"
    save_file({"diffusion_model.input_blocks.40.1.transformer_blocks.0.attn1.to_q.lora_down.weight": torch.ones(2, 8),
               "diffusion_model.input_blocks.40.1.transformer_blocks.0.attn1.to_q.lora_up.weight": torch.ones(8, 2)},
              str(path))
    with pytest.raises((InvalidInputError, LoraMismatchError), match="input_blocks.40"):
        load_lora(path)


def test_a_unet_with_temporal_layers_in_its_blocks_gets_no_ldm_names():
    """ModelScope's UNet3D has an original layout of its own; LDM names must not land on it by coincidence."""
    from motion_core.backbones.unet3d.tiny import tiny_unet3d_backbone

    names = [n for n, _ in tiny_unet3d_backbone().denoiser.named_modules()]
    assert layout_from_module_names(names) is None and original_names(names) == {}


# ---- the rule on the real SD1.5 UNet (meta device, no weights) ---------------------------------------------------
def _config(name):
    return json.loads((CONFIGS_DIR / name / "config.json").read_text())


@pytest.fixture(scope="module")
def real_unet():
    from diffusers import MotionAdapter, UNet2DConditionModel, UNetMotionModel

    with torch.device("meta"):
        unet2d = UNet2DConditionModel.from_config(_config("sd15/unet"))
        adapter = MotionAdapter.from_config(_config("animatediff_motion_adapter_v3"))
        return UNetMotionModel.from_unet2d(unet2d, adapter, load_weights=False)


def test_block_structure_from_module_names_matches_the_config(real_unet, backbone, module_names):
    real_names = [n for n, _ in real_unet.named_modules()]
    assert layout_from_module_names(real_names) == layout_from_config(_config("sd15/unet"))
    assert layout_from_module_names(module_names) == layout_from_config(backbone.denoiser.config)


@pytest.mark.parametrize("diffusers, original", [
    ("down_blocks.0.attentions.0", "input_blocks.1.1"),
    ("down_blocks.0.attentions.1.transformer_blocks.0.attn2.to_k", "input_blocks.2.1.transformer_blocks.0.attn2.to_k"),
    ("down_blocks.0.downsamplers.0.conv", "input_blocks.3.0.op"),
    ("down_blocks.2.attentions.1.proj_in", "input_blocks.8.1.proj_in"),
    ("down_blocks.3.resnets.1.conv2", "input_blocks.11.0.out_layers.3"),
    ("mid_block.attentions.0", "middle_block.1"),
    ("mid_block.resnets.1.time_emb_proj", "middle_block.2.emb_layers.1"),
    ("up_blocks.0.resnets.2.conv_shortcut", "output_blocks.2.0.skip_connection"),
    ("up_blocks.0.upsamplers.0.conv", "output_blocks.2.1.conv"),
    ("up_blocks.1.upsamplers.0.conv", "output_blocks.5.2.conv"),
    ("up_blocks.3.attentions.2", "output_blocks.11.1"),
    ("up_blocks.3.attentions.2.transformer_blocks.0.ff.net.0.proj",
     "output_blocks.11.1.transformer_blocks.0.ff.net.0.proj"),
    ("conv_in", "input_blocks.0.0"),
    ("conv_out", "out.2"),
])
def test_known_sd15_pairs(diffusers, original, real_unet):
    table = original_names([n for n, _ in real_unet.named_modules()])
    assert table[original] == diffusers


def test_every_sd15_attention_projection_has_exactly_one_ldm_name(real_unet):
    names = [n for n, _ in real_unet.named_modules()]
    layout = layout_from_module_names(names)
    projections = [n for n in names if ".attentions." in n and n.endswith((".to_q", ".to_k", ".to_v", ".to_out.0"))]
    assert len(projections) == 16 * 2 * 4
    originals = [original_name(n, layout) for n in projections]
    assert None not in originals and len(set(originals)) == len(projections)
    assert all(original_name(n, layout) is None for n in names if ".motion_modules." in n)
    assert len(original_names(names)) == len({original_name(n, layout) for n in names} - {None})


@pytest.mark.skipif(not (comfyui_dir() / "comfy" / "utils.py").is_file(), reason="ComfyUI is not provisioned")
def test_sd15_names_agree_with_comfyuis_own_table(real_unet):
    """ComfyUI reads these files, so its unet_to_diffusers table (run in a child process: importing comfy changes
    global state) is the arbiter, for every weight of the SD1.5 UNet."""
    script = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import comfy.utils as u; print(json.dumps("
        "u.unet_to_diffusers({'num_res_blocks': [2, 2, 2, 2], 'channel_mult': [1, 2, 4, 4], "
        "'transformer_depth': [1, 1, 1, 1, 1, 1, 0, 0], 'transformer_depth_middle': 1, "
        "'transformer_depth_output': [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0]})))"
    )
    done = subprocess.run([sys.executable, "-c", script, str(comfyui_dir())], capture_output=True, text=True,
                          timeout=120, check=True)
    comfy = json.loads(done.stdout.strip().splitlines()[-1])
    params = {n for n, _ in real_unet.named_parameters() if ".motion_modules." not in n}
    layout = layout_from_module_names([n for n, _ in real_unet.named_modules()])
    assert params <= set(comfy)
    for param in params:
        module, _, _ = param.rpartition(".")
        assert original_name(module, layout) == comfy[param].rpartition(".")[0], param
