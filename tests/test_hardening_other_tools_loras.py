"""Other tools' LoRA files, each written by that tool (or exactly as it writes it) and read back against that tool's
own reading (issue 38, items 14-16): diffusers' pipeline save with adapter metadata (the config under component
prefixes), peft's alpha_pattern / rank_pattern / use_rslora, and ComfyUI's Train LoRA output (LoRA factors plus
.diff / .diff_b full-weight patches). The pack's delta must equal the tool's within 1e-6 relative, per module."""

import json
import subprocess
import sys

import pytest
import torch
from harness.provision import comfyui_dir
from peft import LoraConfig, get_peft_model_state_dict
from peft.tuners.lora.layer import LoraLayer
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from motion_core.backbones.wan.keys import diffusers_to_original
from motion_core.backbones.wan.tiny import tiny_wan_backbone, tiny_wan_parts
from motion_core.errors import InvalidInputError, LoraFileError, LoraMismatchError
from motion_core.lora import attach_lora, check_lora_fits, load_lora, save_lora
from motion_core.lora.merge import StackMerger, lora_delta
from motion_core.lora.report import stack_left_out, stack_note
from motion_core.lora.stack import LoraStack
from motion_core.native import native_loras

TOLERANCE = 1e-6
TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "ffn.net.0.proj", "ffn.net.2"]


def relative(mine: torch.Tensor, theirs: torch.Tensor) -> float:
    mine, theirs = mine.detach().double(), theirs.detach().double()
    return float((mine - theirs).norm() / theirs.norm())


# ---- diffusers / peft ---------------------------------------------------------------------------------------------

def peft_transformer(config: LoraConfig, seed: int = 0):
    """A tiny WanTransformer3DModel with ``config`` injected by diffusers (as a trainer does) and random factors."""
    transformer = tiny_wan_parts()["denoiser"]
    transformer.add_adapter(config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in transformer.named_parameters():
            if "lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=g) * 0.3)
    return transformer


def save_with_diffusers(transformer, config: LoraConfig, folder, how: str):
    """The file diffusers writes: ``pipeline`` = WanPipeline.save_lora_weights (keys and config under
    ``transformer.``), ``adapter`` = the model's own save_lora_adapter (bare keys and config)."""
    from diffusers.loaders.lora_pipeline import WanLoraLoaderMixin

    if how == "pipeline":
        WanLoraLoaderMixin.save_lora_weights(folder, transformer_lora_layers=get_peft_model_state_dict(transformer),
                                             transformer_lora_adapter_metadata=config.to_dict())
    else:
        transformer.save_lora_adapter(folder)
    return folder / "pytorch_lora_weights.safetensors"


def diffusers_deltas(path, how: str) -> dict[str, torch.Tensor]:
    """diffusers' own reading: load the file into a fresh transformer as a pipeline does, peft's delta per layer."""
    from diffusers.loaders.lora_pipeline import WanLoraLoaderMixin

    state, metadata = WanLoraLoaderMixin.lora_state_dict(str(path), return_lora_metadata=True)
    reference = tiny_wan_parts()["denoiser"]
    reference.load_lora_adapter(state, prefix="transformer" if how == "pipeline" else None, metadata=metadata,
                                adapter_name="reference")
    return {name: layer.get_delta_weight("reference") for name, layer in reference.named_modules()
            if isinstance(layer, LoraLayer)}


def assert_pack_reads_as_diffusers(path, how: str) -> float:
    lora = load_lora(path)
    theirs = diffusers_deltas(path, how)
    weights = dict(tiny_wan_parts()["denoiser"].named_modules())
    assert lora.modules() == sorted(theirs)
    worst = max(relative(lora_delta(lora, m, weights[m].weight), delta) for m, delta in theirs.items())
    assert worst <= TOLERANCE, worst
    return worst


@pytest.mark.parametrize("how", ["pipeline", "adapter"])
def test_diffusers_adapter_metadata_gives_the_scale_diffusers_applies(tmp_path, how):
    """Item 14: rank 4, alpha 8 is scale 2 everywhere; read as scale 1 every module was at half strength."""
    config = LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS)
    path = save_with_diffusers(peft_transformer(config), config, tmp_path, how)
    with safe_open(str(path), "pt") as handle:
        blob = json.loads(handle.metadata()["lora_adapter_metadata"])
    assert ("transformer.lora_alpha" in blob) == (how == "pipeline") and ("lora_alpha" in blob) == (how == "adapter")
    assert_pack_reads_as_diffusers(path, how)
    lora = load_lora(path)
    assert {lora.module_alpha(m) / lora.module_rank(m) for m in lora.modules()} == {2.0}


@pytest.mark.parametrize("how", ["pipeline", "adapter"])
def test_alpha_and_rank_patterns_apply_with_peft_matching(tmp_path, how):
    """Item 15: patterns match module names as peft does (suffix after a dot, regex, first key wins): one suffix
    key hits both blocks, a regex key both attentions, a full name one module, the rank pattern changes a rank."""
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=TARGETS,
        rank_pattern={"attn2.to_k": 8, "blocks.1.ffn.net.0.proj": 2},
        alpha_pattern={"blocks.1.ffn.net.2": 2, r"attn\d.to_v": 16, "ffn.net.2": 4},
    )
    path = save_with_diffusers(peft_transformer(config, seed=1), config, tmp_path, how)
    assert_pack_reads_as_diffusers(path, how)
    lora = load_lora(path)
    scale = {m: lora.module_alpha(m) / lora.module_rank(m) for m in lora.modules()}
    assert scale["blocks.1.ffn.net.2"] == 0.5 and scale["blocks.0.ffn.net.2"] == 1.0  # first matching key wins
    assert scale["blocks.0.attn2.to_v"] == scale["blocks.1.attn1.to_v"] == 4.0
    assert scale["blocks.0.attn2.to_k"] == 1.0 and lora.module_rank("blocks.0.attn2.to_k") == 8
    assert scale["blocks.1.ffn.net.0.proj"] == 4.0 and scale["blocks.0.attn1.to_q"] == 2.0


def test_rslora_scales_by_the_square_root_of_the_rank(tmp_path):
    config = LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, use_rslora=True)
    path = save_with_diffusers(peft_transformer(config, seed=2), config, tmp_path, "pipeline")
    assert_pack_reads_as_diffusers(path, "pipeline")
    lora = load_lora(path)
    assert lora.module_alpha("blocks.0.attn1.to_q") / 4 == pytest.approx(4.0)


def test_a_header_rank_that_contradicts_the_weights_is_an_error_naming_the_module(tmp_path):
    config = LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS)
    path = save_with_diffusers(peft_transformer(config), config, tmp_path, "pipeline")
    tensors = load_file(str(path))
    with safe_open(str(path), "pt") as handle:
        header = handle.metadata()
    blob = json.loads(header["lora_adapter_metadata"])
    blob["transformer.rank_pattern"] = {"blocks.0.attn1.to_q": 16}
    save_file(tensors, str(path), metadata={**header, "lora_adapter_metadata": json.dumps(blob)})
    with pytest.raises(LoraFileError, match=r"pytorch_lora_weights\.safetensors: module 'blocks\.0\.attn1\.to_q' has "
                                            r"rank 4 .* gives it rank 16 \(rank_pattern"):
        load_lora(path)


def test_a_header_config_that_is_not_json_is_an_error_saying_what_to_do(tmp_path):
    config = LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS)
    path = save_with_diffusers(peft_transformer(config), config, tmp_path, "pipeline")
    save_file(load_file(str(path)), str(path), metadata={"lora_adapter_metadata": "{not json"})
    with pytest.raises(LoraFileError, match="lora_adapter_metadata.*not a JSON table.*remove that header field"):
        load_lora(path)


# ---- ComfyUI's Train LoRA node -----------------------------------------------------------------------------------

RANK = 4


def comfy_trained_file(path, *, alpha=1.0, dtype=torch.float32, seed=0, text_encoder=False):
    """What nodes_train.TrainLoraNode + SaveLoRA write for a Wan: for every module of ComfyUI's model (original names
    under ``diffusion_model.``) with a weight of 2+ dims, ``lora_up.weight`` [out, rank], ``lora_down.weight``
    [rank, prod(weight.shape[1:])] (flattened for convs) and a 0-d ``alpha``; a ``.diff`` for a 1-D weight (norms);
    a ``.diff_b`` for every bias. Bare parameters (modulation) are not modules and get nothing."""
    base = diffusers_to_original(tiny_wan_parts()["denoiser"].state_dict(), prefix="diffusion_model.")
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for key, weight in base.items():
        module, _, parameter = key.rpartition(".")
        if parameter == "weight" and weight.ndim >= 2:
            tensors[f"{module}.lora_up.weight"] = torch.randn(weight.shape[0], RANK, generator=g).to(dtype)
            tensors[f"{module}.lora_down.weight"] = (torch.randn(RANK, weight[0].numel(), generator=g) * 0.3).to(dtype)
            tensors[f"{module}.alpha"] = torch.tensor(alpha)
        elif parameter == "weight":
            tensors[f"{module}.diff"] = (torch.randn(weight.shape, generator=g) * 0.1).to(dtype)
        elif parameter == "bias":
            tensors[f"{module}.diff_b"] = (torch.randn(weight.shape, generator=g) * 0.1).to(dtype)
    if text_encoder:
        tensors["text_encoders.umt5xxl.transformer.encoder.block.0.layer.0.SelfAttention.q.lora_up.weight"] = \
            torch.zeros(8, RANK)
    save_file(tensors, str(path))
    return path, base


def comfy_reading(lora_file, base: dict, strength: float) -> dict[str, torch.Tensor]:
    """ComfyUI's application as comfy/lora.py states it (original names): W += strength * alpha / rank *
    (up.flatten(1) @ down.flatten(1)) for factors, W += strength * diff, bias += strength * diff_b."""
    tensors = load_file(str(lora_file))
    out = {}
    for key, value in tensors.items():
        if key.endswith(".lora_up.weight"):
            module = key[: -len(".lora_up.weight")]
            up, down = value.float().flatten(1), tensors[f"{module}.lora_down.weight"].float().flatten(1)
            scale = float(tensors[f"{module}.alpha"]) / down.shape[0]
            weight = base[f"{module}.weight"]
            out[f"{module}.weight"] = weight + strength * scale * (up @ down).reshape(weight.shape)
        elif key.endswith((".diff", ".diff_b")) and key.startswith("diffusion_model."):
            target = key[: -len(".diff")] + ".weight" if key.endswith(".diff") else key[: -len(".diff_b")] + ".bias"
            out[target] = base[target] + strength * value.float()
    return out


def pack_merged(lora, strength: float) -> dict[str, torch.Tensor]:
    """The tiny Wan with ``lora`` merged by the sampler's StackMerger, in original names."""
    backbone = tiny_wan_backbone()
    with StackMerger(backbone.denoiser, LoraStack().add(lora, strength)) as merger:
        merger.apply((0,))
        return diffusers_to_original({k: v.clone() for k, v in backbone.denoiser.state_dict().items()},
                                     prefix="diffusion_model.")


def worst_delta_error(mine: dict, theirs: dict, base: dict) -> float:
    assert sorted(theirs) and set(theirs) <= set(mine)
    unchanged = [k for k in mine if k not in theirs and not torch.equal(mine[k], base[k])]
    assert not unchanged, unchanged[:3]
    return max(relative(mine[k] - base[k], theirs[k] - base[k]) for k in theirs)


@pytest.mark.parametrize("strength, alpha, dtype", [(1.0, 1.0, torch.float32), (-0.7, 8.0, torch.bfloat16)])
def test_a_comfyui_trained_lora_applies_whole_as_comfyui_applies_it(tmp_path, strength, alpha, dtype):
    """Item 16: factors (the patch embedding's conv flattened), norm .diff and bias .diff_b all land, as core's
    formula says, on exactly the parameters core patches: the head, the patch embedding and the norms included."""
    path, base = comfy_trained_file(tmp_path / "trained_lora_10_steps_00001_.safetensors", alpha=alpha, dtype=dtype)
    lora = load_lora(path)
    assert {"patch_embedding", "proj_out", "blocks.0.attn1.norm_q", "blocks.0.norm2"} <= set(lora.patched_modules())
    theirs = comfy_reading(path, base, strength)
    assert {"diffusion_model.patch_embedding.weight", "diffusion_model.patch_embedding.bias",
            "diffusion_model.head.head.weight", "diffusion_model.blocks.0.norm3.weight",
            "diffusion_model.blocks.1.self_attn.norm_k.weight"} <= set(theirs)
    check_lora_fits(tiny_wan_backbone().denoiser, lora, family="wan")
    assert worst_delta_error(pack_merged(lora, strength), theirs, base) <= TOLERANCE


def test_merging_a_comfyui_trained_lora_restores_weights_and_biases_exactly(tmp_path):
    path, _ = comfy_trained_file(tmp_path / "t.safetensors")
    backbone = tiny_wan_backbone()
    before = {k: v.clone() for k, v in backbone.denoiser.state_dict().items()}
    with StackMerger(backbone.denoiser, LoraStack().add(load_lora(path))) as merger:
        merger.apply((0,))
        assert not torch.equal(backbone.denoiser.patch_embedding.bias, before["patch_embedding.bias"])
    assert all(torch.equal(v, before[k]) for k, v in backbone.denoiser.state_dict().items())


def test_the_patches_survive_saving_in_canonical_and_comfyui_layouts_and_refuse_the_others(tmp_path):
    path, base = comfy_trained_file(tmp_path / "t.safetensors")
    lora = load_lora(path)
    theirs = comfy_reading(path, base, 1.0)
    for fmt in ("canonical", "comfyui"):
        again = load_lora(save_lora(lora, tmp_path / f"again_{fmt}.safetensors", format=fmt))
        assert again.patches.keys() == lora.patches.keys()
        assert worst_delta_error(pack_merged(again, 1.0), theirs, base) <= TOLERANCE
    with pytest.raises(InvalidInputError, match=r"full-weight patches .* kohya layout has no place for"):
        save_lora(lora, tmp_path / "k.safetensors", format="kohya")
    assert not (tmp_path / "k.safetensors").exists()


def test_what_is_not_applied_is_reported_on_the_node_and_in_the_sampling_result(tmp_path):
    from motion_core.sampling import SampleRequest, sample_video

    path, _ = comfy_trained_file(tmp_path / "with_te.safetensors", text_encoder=True)
    lora = load_lora(path)
    stack = LoraStack().add(lora, 0.05)
    note = stack_note(stack, lora)
    assert "not applied: its text_encoder part" in note and "also applied: full-weight patches on" in note
    backbone = tiny_wan_backbone()
    result = sample_video(backbone, SampleRequest(prompt="a dot", steps=2, frames=5, width=16, height=16,
                                                  cfg=1.0, lora_stack=stack))
    assert result.not_applied == stack_left_out(stack) and len(result.not_applied) == 1
    assert "with_te" in result.not_applied[0] and "text_encoder" in result.not_applied[0]


def test_peft_attach_refuses_patches_but_takes_flattened_conv_factors(tmp_path):
    path, _ = comfy_trained_file(tmp_path / "t.safetensors")
    lora = load_lora(path)
    backbone = tiny_wan_backbone()
    with pytest.raises(LoraMismatchError, match=r"full-weight patches .* peft adapter cannot hold.*LoRA stack"):
        attach_lora(backbone.denoiser, lora)
    factors_only = type(lora)(lora.tensors, lora.metadata)
    name = attach_lora(backbone.denoiser, factors_only)
    layer = backbone.denoiser.patch_embedding
    assert relative(layer.get_delta_weight(name), lora_delta(lora, "patch_embedding", layer.base_layer.weight)) \
        <= TOLERANCE


def test_the_native_entry_counts_every_parameter_core_patches(tmp_path):
    path, base = comfy_trained_file(tmp_path / "t.safetensors")
    entry = native_loras(load_lora(path))[0]
    assert entry.modules == len(comfy_reading(path, base, 1.0))
    assert {k for k in entry.state_dict if k.endswith((".diff", ".diff_b"))} == {
        k for k in load_file(str(path)) if k.endswith((".diff", ".diff_b"))}


@pytest.mark.skipif(not (comfyui_dir() / "comfy" / "lora.py").is_file(), reason="ComfyUI is not provisioned")
def test_comfyuis_own_loader_patches_what_the_pack_merges(tmp_path):
    """The provisioned ComfyUI 0.3.75's load_lora + calculate_weight, on the Train-LoRA file and on the pack's
    comfyui re-export of it: every entry maps, and the patched weights equal the pack's merge."""
    path, base = comfy_trained_file(tmp_path / "t.safetensors", alpha=4.0)
    lora = load_lora(path)
    export = save_lora(lora, tmp_path / "export.safetensors", format="comfyui")
    save_file(base, str(tmp_path / "base.safetensors"))
    script = (
        "import sys; root, base, *files = sys.argv[1:]; sys.argv = ['x', '--cpu']; sys.path.insert(0, root)\n"
        "import comfy.options; comfy.options.enable_args_parsing()\n"
        "import comfy.lora, torch; from safetensors.torch import load_file, save_file\n"
        "weights = load_file(base)\n"
        "key_map = {k[:-len('.weight')]: k for k in weights if k.endswith('.weight')}\n"
        "for i, f in enumerate(files):\n"
        "    patches = comfy.lora.load_lora(load_file(f), key_map)\n"
        "    out = {k: comfy.lora.calculate_weight([(0.6, v, 1.0, None, None)], weights[k].clone(), k)\n"
        "           for k, v in patches.items()}\n"
        "    save_file(out, f + '.patched')\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(comfyui_dir()), str(tmp_path / "base.safetensors"),
                           str(path), str(export)], check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "lora key not loaded" not in done.stderr, done.stderr[-2000:]
    mine = pack_merged(lora, 0.6)
    for file in (path, export):
        theirs = load_file(f"{file}.patched")
        assert len(theirs) == native_loras(lora)[0].modules
        assert worst_delta_error(mine, theirs, base) <= TOLERANCE
