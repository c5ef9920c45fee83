"""Export/import layouts: original AnimateDiff (as AnimateDiff-Evolved reads it), kohya, and detection."""

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from test_lora_support import add_random, names, run, spatial_names, temporal_names, tiny_motion_unet, tiny_unet3d

from motion_core.errors import InvalidInputError, LoraMismatchError
from motion_core.lora import attach_lora, detect_format, load_lora, lora_from_adapter, lora_from_tensors, save_lora

ADE_Q_DOWN = ("down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0."
              "processor.to_q_lora.down.weight")


def motion_lora_model(alpha=16.0):
    model = tiny_motion_unet()
    modules = names(model, "motion_modules", ("to_q", "to_k", "to_v", "to_out.0", "ff.net.2", "proj_in"))
    add_random(model, "motion", modules, rank=4, alpha=alpha, target_sets=("temporal_attn",))
    return model, lora_from_adapter(model, "motion", family="animatediff", recipe="vmc")


def ade_patches(state_dict):
    """AnimateDiff-Evolved's motion-LoRA reading, re-stated from its documented key rules."""
    temporal = {k: v for k, v in state_dict.items() if "temporal" in k}
    patches = {}
    for key, down in temporal.items():
        if "up." in key:
            continue
        up = temporal[key.replace(".down.", ".up.")]
        target = key.replace("processor.", "").replace("_lora", "").replace("down.", "").replace("up.", "")
        if "to_out.0." not in target:
            target = target.replace("to_out.", "to_out.0.")
        patches[target] = up.float() @ down.float()
    return patches


def apply_as_ade_would(model, state_dict, strength=1.0):
    """Patch weights the way ADE does, mapped to diffusers names by the diffusers conversion-script rules."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for key, patch in ade_patches(state_dict).items():
            name = (key.replace(".attention_blocks.0", ".attn1").replace(".attention_blocks.1", ".attn2")
                    .replace(".temporal_transformer", ""))
            params[name] += strength * patch
    return model


def test_animatediff_export_follows_the_original_key_layout(tmp_path):
    _, lora = motion_lora_model()
    path = save_lora(lora, tmp_path / "pan.safetensors", format="animatediff")
    with safe_open(str(path), "pt") as f:
        keys = set(f.keys())
    assert ADE_Q_DOWN in keys and ADE_Q_DOWN.replace(".down.", ".up.") in keys
    assert ("up_blocks.1.motion_modules.1.temporal_transformer.transformer_blocks.0.attention_blocks.1.processor."
            "to_out_lora.down.weight") in keys
    assert "mid_block.motion_modules.0.temporal_transformer.proj_in_lora.up.weight" in keys
    assert all("temporal_transformer" in k and k.endswith(("_lora.down.weight", "_lora.up.weight")) for k in keys)
    assert detect_format(keys) == "animatediff"


def test_animatediff_export_as_ade_reads_it_matches_our_adapter_with_alpha_baked(tmp_path):
    model, lora = motion_lora_model(alpha=16.0)  # alpha/rank = 4: a missing bake would be obvious
    expected = run(model)
    path = save_lora(lora, tmp_path / "pan.safetensors", format="animatediff")
    with safe_open(str(path), "pt") as f:
        exported = {k: f.get_tensor(k) for k in f.keys()}
    patched = apply_as_ade_would(tiny_motion_unet(), exported)
    assert torch.allclose(run(patched), expected, atol=1e-5)


def test_animatediff_export_reimports_to_identical_outputs(tmp_path):
    model, lora = motion_lora_model(alpha=16.0)
    path = save_lora(lora, tmp_path / "pan.safetensors", format="animatediff")
    loaded = load_lora(path)
    assert loaded.alpha == loaded.rank == 4 and loaded.name == "motion" and loaded.family == "animatediff"
    assert set(loaded.modules()) == set(lora.modules())
    fresh = tiny_motion_unet()
    attach_lora(fresh, loaded, family="animatediff")
    assert torch.allclose(run(fresh), run(model), atol=1e-5)


def test_public_v2_style_motion_lora_ckpt_imports_like_ade_applies_it(tmp_path):
    model = tiny_motion_unet()
    g = torch.Generator().manual_seed(7)
    original = {}
    for module in temporal_names(model):
        block, _, rest = module.partition(".motion_modules.")
        mm, _, inner = rest.partition(".transformer_blocks.")
        tb, attn, proj = inner.split(".", 2)
        ab = int(attn[-1]) - 1
        proj = proj.replace("to_out.0", "to_out")
        stem = (f"{block}.motion_modules.{mm}.temporal_transformer.transformer_blocks.{tb}.attention_blocks.{ab}."
                f"processor.{proj}_lora")
        layer = model.get_submodule(module)
        original[f"{stem}.down.weight"] = torch.randn(8, layer.in_features, generator=g) * 0.1
        original[f"{stem}.up.weight"] = torch.randn(layer.out_features, 8, generator=g) * 0.1
    path = tmp_path / "v2_lora_PanLeft.ckpt"
    torch.save(original, path)
    lora = load_lora(path)
    assert lora.name == "v2_lora_PanLeft" and lora.kind == "motion" and lora.alpha == lora.rank == 8
    attach_lora(model, lora, family="animatediff", strength=0.7)
    reference = apply_as_ade_would(tiny_motion_unet(), original, strength=0.7)
    assert torch.allclose(run(model), run(reference), atol=1e-5)


def test_animatediff_export_refuses_spatial_modules():
    model = tiny_motion_unet()
    add_random(model, "spatial", spatial_names(model))
    lora = lora_from_adapter(model, "spatial", kind="appearance")
    from motion_core.lora.formats.animatediff import to_animatediff_file
    with pytest.raises(InvalidInputError, match="canonical format"):
        to_animatediff_file(lora)


def test_kohya_export_reimports_to_identical_outputs_with_alpha(tmp_path):
    model = tiny_unet3d()
    add_random(model, "look", spatial_names(model), rank=4, alpha=2.0)
    lora = lora_from_adapter(model, "look", kind="appearance", family="unet3d")
    path = save_lora(lora, tmp_path / "look.safetensors", format="kohya")
    with safe_open(str(path), "pt") as f:
        keys = set(f.keys())
        alpha = f.get_tensor("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.alpha")
    assert "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight" in keys
    assert "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight" in keys
    assert float(alpha) == 2.0 and detect_format(keys) == "kohya"
    fresh = tiny_unet3d()
    loaded = load_lora(path, module_names=[n for n, _ in fresh.named_modules()])
    assert loaded.alpha == 2.0 and loaded.kind == "appearance"
    attach_lora(fresh, loaded, family="unet3d")
    assert torch.equal(run(fresh), run(model))


def test_third_party_kohya_file_without_header_or_alpha(tmp_path):
    model = tiny_unet3d()
    add_random(model, "look", spatial_names(model), rank=4, alpha=4.0)
    lora = lora_from_adapter(model, "look")
    plain = {}
    for module in lora.modules():
        a, b = lora.weights(module)
        flat = "lora_unet_" + module.replace(".", "_")
        plain[f"{flat}.lora_down.weight"], plain[f"{flat}.lora_up.weight"] = a, b
    plain["lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight"] = torch.zeros(4, 8)
    save_file(plain, str(tmp_path / "civitai.safetensors"))
    fresh = tiny_unet3d()
    loaded = load_lora(tmp_path / "civitai.safetensors", [n for n, _ in fresh.named_modules()])
    assert loaded.alpha == 4.0 and loaded.metadata["extra"]["skipped_components"] == ["text_encoder"]
    attach_lora(fresh, loaded)
    assert torch.equal(run(fresh), run(model))


def test_kohya_keys_the_model_lacks_are_named():
    tensors = {"lora_unet_input_blocks_1_1_proj_in.lora_down.weight": torch.zeros(4, 32),
               "lora_unet_input_blocks_1_1_proj_in.lora_up.weight": torch.zeros(32, 4)}
    module_names = [n for n, _ in tiny_unet3d().named_modules()]
    with pytest.raises(LoraMismatchError, match="lora_unet_input_blocks_1_1_proj_in"):
        lora_from_tensors(tensors, None, module_names)
    # Without a model the names resolve against the released SD1.5 UNet, which has that module.
    assert list(lora_from_tensors(tensors, None, None).modules()) == ["down_blocks.0.attentions.0.proj_in"]


def test_diffusers_format_motion_lora_imports():
    model, lora = motion_lora_model(alpha=4.0)
    diffusers_style = {}
    for module in lora.modules():
        a, b = lora.weights(module)
        diffusers_style[f"unet.{module}.lora.down.weight"] = a
        diffusers_style[f"unet.{module}.lora.up.weight"] = b
    assert detect_format(diffusers_style) == "canonical"
    fresh = tiny_motion_unet()
    attach_lora(fresh, lora_from_tensors(diffusers_style))
    # frozen vs trainable LoRA weights take slightly different CPU kernels here (~1e-6), hence allclose
    assert torch.allclose(run(fresh), run(model), atol=1e-5)


def test_unknown_layout_is_named():
    with pytest.raises(InvalidInputError, match="Cannot tell what kind of LoRA"):
        detect_format(["model.diffusion_model.foo.weight"])
